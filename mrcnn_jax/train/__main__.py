"""Command line: ``python -m mrcnn_jax.train --config CONFIG.py --workdir DIR [--config.a.b=value ...]``.

Run the same command on every host of a multi-host job. ``jax.distributed`` is initialised when
``--distributed`` says so: ``auto`` (default) does it when ``JAX_COORDINATOR_ADDRESS`` is set (then
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` name the job size and this process), ``yes`` always
(cluster auto-detection: Cloud TPU, SLURM, Open MPI, Kubernetes), ``no`` never.

Exit codes: 0 finished; 143 stopped by SIGTERM (preemption) and 130 by Ctrl-C (SIGINT), each after
saving a checkpoint at the step it was on (a second Ctrl-C abandons the step without saving); 2 a
user error (one line on stderr: a bad config key or value, data not prepared, ...).
"""

import logging
import os
import re
import sys

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from mrcnn_jax import compile_cache, errors
from mrcnn_jax.train import loop

config_flags.DEFINE_config_file("config", None, "Python config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "Output directory (local or gs://): checkpoints, logs, config.json.")
flags.DEFINE_enum("distributed", "auto", ["auto", "yes", "no"], "Call jax.distributed.initialize().")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
USAGE = "python -m mrcnn_jax.train --config CONFIG.py --workdir DIR [--config.a.b=value ...]"
QUIET = ("/orbax/", "/tensorflow_datasets/")  # their INFO lines (~140 per short run) are not shown


def initialize_distributed(mode: str):
  """Joins the multi-process job described by the environment (see the module docstring)."""
  env = os.environ
  if mode == "yes" or (mode == "auto" and "JAX_COORDINATOR_ADDRESS" in env):
    num_processes = int(env["JAX_NUM_PROCESSES"]) if "JAX_NUM_PROCESSES" in env else None
    process_id = int(env["JAX_PROCESS_ID"]) if "JAX_PROCESS_ID" in env else None
    jax.distributed.initialize(num_processes=num_processes, process_id=process_id)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with a flag missing, a bad value, a config file that does not load or a
  ``--config.<key>`` that the config lacks as one line and exit code 2."""
  try:
    rest = FLAGS(argv)
  except flags.IllegalFlagValueError as e:  # a required flag missing, or a value of the wrong type
    missing = re.search(r"Flag --(\w+) must have a value other than None", str(e))
    sys.exit(errors.fail(f"--{missing.group(1)} is required: {USAGE}" if missing else str(e)))
  except (AttributeError, KeyError) as e:  # ml_collections: the override's key is not in the config
    sys.exit(_unknown_key(argv, e))
  try:
    FLAGS.config.keys()  # ml_collections reports a config file that failed to load only when it is used
  except OSError as e:
    path = config_flags.get_config_filename(FLAGS["config"])
    reason = "no such file" if not os.path.isfile(path.split(":")[0]) else str(e).splitlines()[0]
    sys.exit(errors.fail(f"--config {path}: {reason}"))
  return rest


def _unknown_key(argv: list[str], e: Exception) -> int:
  """The one-line error for a ``--config.<key>`` override that the config lacks."""
  message = e
  while isinstance(message, BaseException) and message.args:  # AttributeError(KeyError("'key'..."))
    message = message.args[0]
  message = str(message)
  key = re.match(r"'(\w+)'", message)
  suggestion = re.search(r'Did you mean "(\w+)"', message)
  paths = [arg[len("--config."):].split("=")[0] for arg in argv if arg.startswith("--config.")]
  path = next((p for p in paths if key and key.group(1) in p.split(".")), None)
  if path is None:
    return errors.fail(f"bad --config override: {message}")
  fixed = ".".join(suggestion.group(1) if part == key.group(1) else part for part in path.split("."))
  hint = f" (did you mean {fixed}?)" if suggestion else ""
  return errors.fail(f"unknown config key {path}{hint}")


def quiet_library_logs():
  """Hides the INFO lines of the libraries in QUIET (their warnings and errors still show)."""
  absl_logging.get_absl_handler().addFilter(
      lambda record: record.levelno >= logging.WARNING or not any(q in record.pathname for q in QUIET))


def train(argv) -> int:
  """Trains; the exit code is 128 + the signal's number when a signal stopped training."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_library_logs()
  initialize_distributed(FLAGS.distributed)
  try:
    loop.train(FLAGS.config, FLAGS.workdir)
  except loop.Stopped as stopped:
    return 128 + stopped.signal
  return 0


def main(argv) -> int:
  return errors.run_cli(train, argv)


if __name__ == "__main__":
  compile_cache.enable()
  app.run(main, flags_parser=parse_flags)
