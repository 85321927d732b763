"""SIGTERM (preemption) and Ctrl-C (SIGINT) handling: finish the current step, save, exit.

Single process: a Python handler records the signal and the loop polls it after every step; a
second Ctrl-C raises KeyboardInterrupt (abandon the step, no save). Several processes: every
process must save at the same step, so the decision comes from JAX's preemption sync service
(``jax.distributed`` catches SIGTERM on any host and all hosts agree on a step, see
``multihost_utils.reached_preemption_sync_point``); Ctrl-C is passed to it as a SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils


class PreemptionWatcher:
  """``should_stop(step)`` turns True once SIGTERM or SIGINT arrived (on any process); ``signal``
  is then the one that did (SIGTERM when another process was preempted)."""

  def __init__(self):
    self.signal = None
    self.multiprocess = jax.process_count() > 1
    self.previous = {}
    if threading.current_thread() is threading.main_thread():
      handled = (signal.SIGINT,) if self.multiprocess else (signal.SIGINT, signal.SIGTERM)
      self.previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}

  def _on_signal(self, signum, frame):
    if signum == signal.SIGINT and self.signal == signal.SIGINT:  # the second Ctrl-C
      if callable(self.previous.get(signum)):
        self.previous[signum](signum, frame)  # the command line's: exit at once (errors.exit_on_ctrl_c)
      raise KeyboardInterrupt
    name = signal.Signals(signum).name
    again = " (Ctrl-C again to exit without saving)" if signum == signal.SIGINT else ""
    logging.warning("%s received: saving a checkpoint after this step, then exiting%s.", name, again)
    self.signal = signum
    if self.multiprocess:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier, which syncs all processes

  def should_stop(self, step: int) -> bool:
    if self.multiprocess:
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal = self.signal or signal.SIGTERM
        return True
      return False
    return self.signal is not None

  def close(self):
    """Restores the handlers that were installed before."""
    for signum, previous in self.previous.items():
      signal.signal(signum, signal.SIG_DFL if previous is None else previous)
    self.previous = {}
