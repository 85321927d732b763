"""Scalar metrics to ``<workdir>/metrics.jsonl`` (one JSON object per logged step) and TensorBoard.

TensorBoard events go to ``<workdir>/tensorboard``; on a ``gs://`` workdir tensorboardX needs the
``google-cloud-storage`` package, and without it only ``metrics.jsonl`` is written (with a warning).
A resumed run drops what an earlier run logged past the step it resumes from (those steps are run
again): lines of ``metrics.jsonl``, and TensorBoard events (its ``purge_step``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from absl import logging
from etils import epath
from tensorboardX import SummaryWriter, record_writer


def _lines_up_to(path: epath.Path, step: int) -> str:
  """The complete lines of ``metrics.jsonl`` at ``path`` logged at or before ``step``."""
  if not path.exists():
    return ""
  kept = []
  for line in path.read_text().splitlines():
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line + "\n")
    except (ValueError, KeyError, TypeError):  # a line cut short by a kill
      pass
  return "".join(kept)


class MetricWriter:
  """Writes on process 0 only; other processes get a writer that does nothing. ``start_step``: the
  step training resumes from (0 for a new run); anything logged after it is dropped."""

  def __init__(self, workdir: str, enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    if enabled:
      self.path = epath.Path(workdir) / "metrics.jsonl"
      self.path.parent.mkdir(parents=True, exist_ok=True)
      kept = _lines_up_to(self.path, start_step)
      self.file = self.path.open("w")
      self.file.write(kept)
      self.tensorboard = None
      if str(workdir).startswith("gs://") and not record_writer.GCS_ENABLED:
        logging.warning("pip install google-cloud-storage for TensorBoard events on %s", workdir)
      else:
        self.tensorboard = SummaryWriter(str(epath.Path(workdir) / "tensorboard"),
                                         purge_step=start_step + 1)

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
