"""Subprocess side of the training tests (JAX device count and jax.distributed are per process).

  python tests/train/worker.py steps     CONFIG_JSON OUT_PREFIX       # bare train steps, see below
  python tests/train/worker.py multihost CONFIG_JSON WORKDIR OUT.npz  # loop.train in a multi-process job

``steps`` runs ``config.train.steps`` train steps three times: on one device and on all n local
devices with the batches a single-process run reads (OUT_PREFIX-1dev-1shards.npz,
OUT_PREFIX-<n>dev-1shards.npz), and on all devices with the global batches a 2-process job
assembles (shard 0 of 2, then shard 1 of 2; OUT_PREFIX-<n>dev-2shards.npz). The .npz files hold
the final parameters of this process (and, for ``steps``, ``losses`` per step).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from mrcnn_jax.data import pipeline as data_lib
from mrcnn_jax.train import loop
from mrcnn_jax.train import mesh as mesh_lib
from mrcnn_jax.train import optimizer as optimizer_lib
from mrcnn_jax.train import train_step as train_step_lib
from mrcnn_jax.train.__main__ import initialize_distributed


def save_params(state, path, **extra):
  params = mesh_lib.local_copy(state["params"])
  np.savez(path, **extra, **{jax.tree_util.keystr(k): np.asarray(v)
                             for k, v in jax.tree_util.tree_leaves_with_path(params)})


def run_steps(config, devices, shard_counts, prefix):
  """Trains from the same initial state once per data layout; saves ``{prefix}-{shards}shards.npz``."""
  mesh = mesh_lib.make_mesh(devices)
  graphdef, params, batch_stats = loop.init_model(config, mesh)
  tx, _ = optimizer_lib.make_optimizer(config.train, config.data.batch_size)
  step = train_step_lib.make_train_step(graphdef, config.train, config.data.batch_size, mesh)
  lengths = optimizer_lib.schedule_lengths(config.train)
  for shards in shard_counts:
    state = train_step_lib.init_state(*jax.tree.map(jnp.copy, (params, batch_stats)), tx, config.train.seed,
                                      mesh)
    iterators = [data_lib.train_iterator(config, shard_index=i, shard_count=shards)
                 for i in range(shards)]
    losses = []
    for _ in range(config.train.steps):
      parts = [next(it) for it in iterators]
      batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
      state, metrics = step(state, mesh_lib.global_batch(batch, mesh), lengths)
      losses.append(float(metrics["loss"]))
    save_params(state, f"{prefix}-{shards}shards.npz", losses=np.asarray(losses))


def main(mode, config_json, *args):
  with open(config_json) as f:
    config = ConfigDict(json.load(f))
  if mode == "steps":
    (prefix,) = args
    run_steps(config, jax.devices()[:1], [1], f"{prefix}-1dev")
    run_steps(config, jax.devices(), [1, 2], f"{prefix}-{jax.device_count()}dev")
  elif mode == "multihost":
    workdir, out = args
    initialize_distributed("auto")
    state, _ = loop.train(config, workdir)
    save_params(state, out)
  else:
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
  main(*sys.argv[1:])
