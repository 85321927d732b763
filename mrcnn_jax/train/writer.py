"""Scalar metrics to ``<workdir>/metrics.jsonl`` (one JSON object per logged step) and TensorBoard.

TensorBoard events go to ``<workdir>/tensorboard``; on a ``gs://`` workdir tensorboardX needs the
``google-cloud-storage`` package, and without it only ``metrics.jsonl`` is written (with a warning).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from absl import logging
from etils import epath
from tensorboardX import SummaryWriter, record_writer


class MetricWriter:
  """Writes on process 0 only; other processes get a writer that does nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self.path = epath.Path(workdir) / "metrics.jsonl"
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self.file = self.path.open("a")
      self.tensorboard = None
      if str(workdir).startswith("gs://") and not record_writer.GCS_ENABLED:
        logging.warning("pip install google-cloud-storage for TensorBoard events on %s", workdir)
      else:
        self.tensorboard = SummaryWriter(str(epath.Path(workdir) / "tensorboard"))

  def write(self, step: int, scalars: Mapping[str, float]):
    if not self.enabled:
      return
    scalars = {name: float(value) for name, value in scalars.items()}
    self.file.write(json.dumps({"step": step, **scalars}) + "\n")
    self.file.flush()
    if self.tensorboard is not None:
      for name, value in scalars.items():
        self.tensorboard.add_scalar(name, value, step)
      self.tensorboard.flush()

  def close(self):
    if self.enabled:
      self.file.close()
      if self.tensorboard is not None:
        self.tensorboard.close()
