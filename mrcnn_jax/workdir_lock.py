"""One trainer per workdir: ``<workdir>/lock`` names the host and process that holds it.

A second trainer is refused in one line. A lock whose process no longer runs on this host (killed,
the machine rebooted) is stale: it is taken over, with a warning. Remote (gs://) workdirs are not
locked.
"""

from __future__ import annotations

import contextlib
import os
import socket

from absl import logging

from mrcnn_jax.errors import UserError


def _running(owner: str) -> bool:
  """Whether the ``"<host> <pid>"`` of a lock file still runs (on another host: assumed so)."""
  host, _, pid = owner.partition(" ")
  if host != socket.gethostname() or not pid.isdigit():
    return True
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process
    return True
  return True


@contextlib.contextmanager
def hold(workdir: str):
  """Holds ``workdir``'s lock while the block runs; UserError when another process holds it."""
  if "://" in workdir:
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  path, me = os.path.join(workdir, "lock"), f"{socket.gethostname()} {os.getpid()}"
  while True:
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      break
    except FileExistsError:
      with open(path) as f:
        owner = f.read().strip()
      if _running(owner):
        host, _, pid = owner.partition(" ")
        raise UserError(f"{workdir} is in use by process {pid or '?'} on {host or '?'}: wait for it to end, or "
                        f"use another --workdir (if that process is not running, delete {path})") from None
      logging.warning("taking over the lock of %s from process %s, which no longer runs", workdir, owner)
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
  with os.fdopen(fd, "w") as f:
    f.write(me)
  try:
    yield
  finally:
    os.remove(path)
