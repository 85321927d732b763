"""User-facing errors and the command lines' exit codes.

A ``UserError`` is a mistake in what the user gave (config, paths, data), not a bug: every CLI
prints its message as one line on stderr and exits with ``USER_ERROR``; anything else keeps its
traceback. A signal that stops a CLI gives 128 + its number: ``INTERRUPTED`` (Ctrl-C), and 143 for
the SIGTERM that preempts training (see mrcnn_jax/train/__main__.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable

USER_ERROR = 2
INTERRUPTED = 128 + signal.SIGINT  # 130


class UserError(ValueError):
  """A mistake in the user's input; the message says what is wrong and how to fix it."""


class ArgumentParser(argparse.ArgumentParser):
  """argparse's, with a mistake in the arguments as the one ``error:`` line of every command line
  (exit code 2), not usage lines before it."""

  def error(self, message):
    sys.exit(fail(f"{message} (see {self.prog} --help)"))


def fail(message: str) -> int:
  """Prints ``error: message`` to stderr; returns USER_ERROR (for ``return fail(...)`` in a main)."""
  print(f"error: {message}", file=sys.stderr)
  return USER_ERROR


def run_cli(main: Callable[..., int | None], *args) -> int:
  """``main(*args)`` (None counts as 0) with UserError -> one line + exit code 2, and Ctrl-C -> 130 at
  any moment (``exit_on_ctrl_c``)."""
  main_thread = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGINT, exit_on_ctrl_c) if main_thread else None
  try:
    return main(*args) or 0
  except UserError as e:
    return fail(str(e))
  except KeyboardInterrupt:  # one that ``main`` raised itself
    print("interrupted (Ctrl-C)", file=sys.stderr)
    return INTERRUPTED
  finally:
    if previous is not None:
      signal.signal(signal.SIGINT, previous)


def exit_on_ctrl_c(signum=signal.SIGINT, frame=None):
  """A SIGINT handler: ends the process at once with exit code 130. Python's KeyboardInterrupt would
  surface wherever the main thread is, inside an XLA compile too, and unwinding or shutting down the
  interpreter there, with XLA's threads still compiling, can crash (SIGSEGV). Every artifact is
  written to a temporary sibling and renamed when complete (mrcnn_jax/outputs.py), so none is left
  half-written; the training loop installs its own handler while it can save a checkpoint."""
  del signum, frame
  print("interrupted (Ctrl-C)", file=sys.stderr, flush=True)
  os._exit(INTERRUPTED)  # pylint: disable=protected-access
