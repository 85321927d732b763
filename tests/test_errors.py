"""The command lines' exit codes (mrcnn_jax/errors.py): Ctrl-C ends a command at once, even mid-compile."""

import os
import signal
import subprocess
import sys
import time

# A command line (errors.run_cli) whose program takes XLA minutes to compile: a chain of 150 matmuls.
COMPILING = """
import sys
import jax, jax.numpy as jnp
from mrcnn_jax import errors

def run():
  def chain(x):
    for i in range(150):
      x = jnp.tanh(x @ x.T + i)
    return x
  lowered = jax.jit(chain).lower(jnp.ones((32, 32)))
  print("compiling", flush=True)
  lowered.compile()
  print("compiled", flush=True)

sys.exit(errors.run_cli(run))
"""


def test_ctrl_c_during_an_xla_compile_exits_130_at_once():
  """Python's KeyboardInterrupt would wait for the compile to return (then unwind through XLA, which
  crashed 6 of 8 times with a cold cache); the command line's handler exits at once."""
  proc = subprocess.Popen([sys.executable, "-c", COMPILING], text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.stdout.readline() == "compiling\n"
  time.sleep(1)
  sent = time.monotonic()
  proc.send_signal(signal.SIGINT)
  try:
    out = proc.communicate(timeout=20)[0]
  finally:
    proc.kill()
  assert time.monotonic() - sent < 15 and "compiled" not in out, out   # the compile takes minutes
  assert proc.returncode == 130 and out.strip().splitlines() == ["interrupted (Ctrl-C)"], (proc.returncode, out)
