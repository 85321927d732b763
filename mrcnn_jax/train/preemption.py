"""SIGTERM (preemption) handling: finish the current step, save, exit cleanly.

Single process: a Python SIGTERM handler sets a flag that the loop polls after every step.
Several processes: every process must save at the same step, so the decision comes from JAX's
preemption sync service (``jax.distributed`` catches SIGTERM on any host and all hosts agree on a
step, see ``multihost_utils.reached_preemption_sync_point``).
"""

from __future__ import annotations

import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils


class PreemptionWatcher:
  """``should_stop(step)`` turns True once a SIGTERM arrived (on any process)."""

  def __init__(self):
    self.received = False
    self.multiprocess = jax.process_count() > 1
    self.previous = None
    if not self.multiprocess and threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint after this step, then exiting.")
    self.received = True

  def should_stop(self, step: int) -> bool:
    if self.multiprocess:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received

  def close(self):
    """Restores the SIGTERM handler that was installed before."""
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
      self.previous = None
