"""Command line: ``python -m mrcnn_jax.train --config CONFIG.py --workdir DIR [--config.a.b=value ...]``.

Run the same command on every host of a multi-host job. ``jax.distributed`` is initialised when
``--distributed`` says so: ``auto`` (default) does it when ``JAX_COORDINATOR_ADDRESS`` is set (then
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` name the job size and this process), ``yes`` always
(cluster auto-detection: Cloud TPU, SLURM, Open MPI, Kubernetes), ``no`` never.
"""

import os

import jax
from absl import app, flags
from ml_collections import config_flags

from mrcnn_jax.train import loop

config_flags.DEFINE_config_file("config", None, "Python config file (get_config()).", lock_config=True)
flags.DEFINE_string("workdir", None, "Output directory (local or gs://): checkpoints, logs, config.json.")
flags.DEFINE_enum("distributed", "auto", ["auto", "yes", "no"], "Call jax.distributed.initialize().")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def initialize_distributed(mode: str):
  """Joins the multi-process job described by the environment (see the module docstring)."""
  env = os.environ
  if mode == "yes" or (mode == "auto" and "JAX_COORDINATOR_ADDRESS" in env):
    num_processes = int(env["JAX_NUM_PROCESSES"]) if "JAX_NUM_PROCESSES" in env else None
    process_id = int(env["JAX_PROCESS_ID"]) if "JAX_PROCESS_ID" in env else None
    jax.distributed.initialize(num_processes=num_processes, process_id=process_id)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  initialize_distributed(FLAGS.distributed)
  loop.train(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
