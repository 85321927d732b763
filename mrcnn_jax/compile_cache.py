"""A persistent XLA compilation cache for the command-line tools: a second run of the same program (an
``infer`` or ``evaluate`` of the same workdir, a resumed training) loads its compiled executables
from disk instead of compiling them again (about a minute for R50-FPN on a CPU).

Where: ``$MRCNN_JAX_COMPILATION_CACHE`` (default ``~/.cache/mrcnn_jax/xla``; it grows with each new
program, a few MB each on a CPU: delete it at will); ``off`` turns it off. A cache that JAX was already given
(``JAX_COMPILATION_CACHE_DIR``) is used as is. Only programs that took over a second to compile
are stored (JAX's ``jax_persistent_cache_min_compile_time_secs``).
"""

import os

ENV = "MRCNN_JAX_COMPILATION_CACHE"
DEFAULT_DIR = os.path.join("~", ".cache", "mrcnn_jax", "xla")


def enable() -> str | None:
  """Turns the cache on, before anything compiles; returns its directory (None: off)."""
  import jax  # pylint: disable=import-outside-toplevel  (a CLI's --help and user errors stay fast)
  if jax.config.jax_compilation_cache_dir:
    return jax.config.jax_compilation_cache_dir
  path = os.environ.get(ENV, DEFAULT_DIR)
  if path.lower() in ("", "0", "off"):
    return None
  path = os.path.expanduser(path)
  jax.config.update("jax_compilation_cache_dir", path)
  return path
