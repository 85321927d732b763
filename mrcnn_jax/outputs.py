"""A command's outputs: never written over its inputs, never left half-written.

Each output is written to a temporary sibling and renamed into place when complete, so an
interrupted command leaves ``<name>.tmp-<pid>`` (which no command reads), never a truncated file or a
checkpoint folder that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil

from mrcnn_jax.errors import UserError


def check_not_inputs(outputs, inputs, flag: str):
  """UserError when one of ``outputs`` (paths a command is about to write) is one of ``inputs``."""
  given = {os.path.realpath(path): path for path in inputs}
  for path in outputs:
    if os.path.realpath(path) in given:
      raise UserError(f"{flag}: writing {path} would overwrite the input {given[os.path.realpath(path)]}; "
                      f"choose another {flag}")


def write_text(path: str, text: str):
  """Writes ``text`` to ``path``, complete or not at all (gs:// and other object stores write whole
  objects; a local file goes through ``atomic_path``)."""
  if "://" in path:
    from etils import epath  # pylint: disable=import-outside-toplevel
    epath.Path(path).write_text(text)
    return
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write(text)


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary sibling of ``path`` to write (a file or a folder); renames it to ``path`` when
  the block ends normally (``path``: absent, a file or an empty folder), else removes it."""
  path = os.path.normpath(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
      os.remove(tmp)
