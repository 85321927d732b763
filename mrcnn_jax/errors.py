"""User-facing errors and the command lines' exit codes.

A ``UserError`` is a mistake in what the user gave (config, paths, data), not a bug: every CLI
prints its message as one line on stderr and exits with ``USER_ERROR``; anything else keeps its
traceback. A signal that stops a CLI gives 128 + its number: ``INTERRUPTED`` (Ctrl-C), and 143 for
the SIGTERM that preempts training (see mrcnn_jax/train/__main__.py).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

USER_ERROR = 2
INTERRUPTED = 128 + signal.SIGINT  # 130


class UserError(ValueError):
  """A mistake in the user's input; the message says what is wrong and how to fix it."""


def fail(message: str) -> int:
  """Prints ``error: message`` to stderr; returns USER_ERROR (for ``return fail(...)`` in a main)."""
  print(f"error: {message}", file=sys.stderr)
  return USER_ERROR


def run_cli(main: Callable[..., int | None], *args) -> int:
  """``main(*args)`` (None counts as 0) with UserError -> one line + exit code 2 and Ctrl-C -> 130."""
  try:
    return main(*args) or 0
  except UserError as e:
    return fail(str(e))
  except KeyboardInterrupt:
    print("interrupted (Ctrl-C)", file=sys.stderr)
    return INTERRUPTED
