"""Scalar metrics to ``<workdir>/metrics.jsonl`` (one JSON object per logged step) and TensorBoard."""

from __future__ import annotations

import json
from collections.abc import Mapping

from etils import epath
from tensorboardX import SummaryWriter


class MetricWriter:
  """Writes on process 0 only; other processes get a writer that does nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self.path = epath.Path(workdir) / "metrics.jsonl"
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self.file = self.path.open("a")
      self.tensorboard = SummaryWriter(str(epath.Path(workdir) / "tensorboard"))

  def write(self, step: int, scalars: Mapping[str, float]):
    if not self.enabled:
      return
    scalars = {name: float(value) for name, value in scalars.items()}
    self.file.write(json.dumps({"step": step, **scalars}) + "\n")
    self.file.flush()
    for name, value in scalars.items():
      self.tensorboard.add_scalar(name, value, step)
    self.tensorboard.flush()

  def close(self):
    if self.enabled:
      self.file.close()
      self.tensorboard.close()
