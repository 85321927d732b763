"""The command-line tools' persistent compilation cache (``mrcnn_jax.compile_cache``), in fresh
processes: on by default under the home directory, moved or turned off by its variable, JAX's own
setting first, and a second run of a program loads it instead of compiling."""

import os
import subprocess
import sys

PROGRAM = ("import jax, jax.numpy as jnp; from mrcnn_jax import compile_cache; print(compile_cache.enable()); "
           "jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()")


def run(tmp_path, **env) -> tuple[str, str]:
  """(the directory ``enable`` returned, the process's log) with HOME in ``tmp_path``."""
  inherited = {k: v for k, v in os.environ.items()
               if k not in ("JAX_COMPILATION_CACHE_DIR", "MRCNN_JAX_COMPILATION_CACHE")}
  done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True,
                        env={**inherited, "HOME": str(tmp_path / "home"), "JAX_LOG_COMPILES": "1",
                             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **env})
  return done.stdout.strip().splitlines()[-1], done.stderr


def stored(path) -> list[str]:
  return [name for _, _, names in os.walk(path) for name in names]


def test_default_cache_is_under_home_and_a_second_run_loads_from_it(tmp_path):
  default = str(tmp_path / "home" / ".cache" / "mrcnn_jax" / "xla")
  path, log = run(tmp_path)
  assert path == default and stored(default) and "cache hit" not in log
  path, log = run(tmp_path)
  assert path == default and "Persistent compilation cache hit" in log


def test_variable_moves_or_turns_off_the_cache_and_jax_setting_comes_first(tmp_path):
  moved = str(tmp_path / "moved")
  assert run(tmp_path, MRCNN_JAX_COMPILATION_CACHE=moved)[0] == moved and stored(moved)
  assert run(tmp_path, MRCNN_JAX_COMPILATION_CACHE="off")[0] == "None"
  assert not os.path.exists(tmp_path / "home")
  own = str(tmp_path / "jax_own")
  assert run(tmp_path, JAX_COMPILATION_CACHE_DIR=own, MRCNN_JAX_COMPILATION_CACHE=moved)[0] == own
