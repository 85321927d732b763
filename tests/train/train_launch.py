"""Helpers to run tests/train/worker.py and the training CLI in subprocesses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mrcnn_jax.train import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")


def config_file(config, path) -> str:
  """Writes ``config`` as JSON (what worker.py reads); returns the path."""
  with open(path, "w") as f:
    f.write(config.to_json())
  return str(path)


def start(env, *argv, process_group=None, **extra_env) -> subprocess.Popen:
  """Starts ``argv`` in the repository root, stdout and stderr piped together (``process_group=0``:
  in a process group of its own, which ``os.killpg`` signals as a terminal's Ctrl-C does)."""
  return subprocess.Popen([str(a) for a in argv], cwd=REPO, text=True,
                          env={**env, **{k: str(v) for k, v in extra_env.items()}},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=process_group)


def start_worker(env, *args, **extra_env) -> subprocess.Popen:
  return start(env, sys.executable, WORKER, *args, **extra_env)


def start_cli(env, config_path, workdir, *overrides, **extra_env) -> subprocess.Popen:
  """``python -m mrcnn_jax.train --config CONFIG --workdir W --config.key=value ...``."""
  return start(env, sys.executable, "-m", "mrcnn_jax.train", "--config", config_path,
               "--workdir", workdir, *overrides, **extra_env)


def config_flags(config, reference, prefix="--config") -> list[str]:
  """``--config.key=value`` for every leaf where ``config`` differs from ``reference`` (the config the
  CLI loads), so a CLI run trains exactly ``config``."""
  flags = []
  for key, value in config.items():
    if hasattr(value, "items"):
      flags += config_flags(value, reference[key], f"{prefix}.{key}")
    elif value != reference[key]:
      flags.append(f"{prefix}.{key}={str(value).replace(' ', '')}")
  return flags


def finish(proc: subprocess.Popen, timeout: float = 1200, expect_ok: bool = True) -> str:
  """Waits for ``proc``; returns its output, failing the test (with the output) on a bad exit.
  ``timeout`` only guards against a hang: the slowest machines of our kind, under load, take minutes."""
  out, _ = proc.communicate(timeout=timeout)
  if expect_ok and proc.returncode:
    pytest.fail(f"{proc.args} exited with {proc.returncode}:\n{out[-6000:]}")
  return out


def load_params(path) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return dict(f)


def load_json_lines(path) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f]


def saved_steps(workdir) -> list[int]:
  """The steps of the complete checkpoints in ``workdir``."""
  directory = checkpoint.checkpoint_dir(str(workdir))
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())
