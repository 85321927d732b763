"""One jitted training step, data-parallel over a ``jax.sharding.Mesh``.

The model is used the functional NNX way: ``graphdef, params, batch_stats = nnx.split(model, nnx.Param,
nnx.BatchStat)`` once on the host, then inside the jitted step ``nnx.merge(graphdef, params,
batch_stats).losses(batch, key)``. ``params`` (fp32, whatever ``config.model.dtype`` the model computes
in) are trained; ``batch_stats`` (frozen BatchNorm statistics) ride along in the state unchanged.

Sharding: the batch is split over the mesh's ``data`` axis (``P('data')``) and the train state is
replicated (``P()``); XLA inserts the gradient all-reduce. The mesh may span many processes: the
same program runs on every process, each feeding its slice of the batch (see ``mesh.global_batch``).

Switching on FSDP (ZeRO-3 style) needs no change to the model: give ``params`` and ``opt_state`` a
sharding that splits each large tensor over the ``data`` axis, e.g. a rule "shard the largest
dimension divisible by the axis size, replicate small tensors", build the per-leaf
``NamedSharding(mesh, P(..., 'data', ...))`` tree with ``jax.tree.map`` and pass it as the state
part of ``in_shardings``/``out_shardings`` (and to ``jax.device_put`` / the checkpoint restore
target). XLA then all-gathers each weight before use and reduce-scatters its gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh
from ml_collections import ConfigDict

from mrcnn_jax.train import mesh as mesh_lib
from mrcnn_jax.train import optimizer as optimizer_lib

# {"step": int32 [], "params": nnx.State, ["batch_stats": nnx.State,] "opt_state": ..., "rng": uint32 [2]}
TrainState = dict[str, Any]


def init_state(params: nnx.State, batch_stats: nnx.State, tx: optax.GradientTransformation, seed: int,
               mesh: Mesh) -> TrainState:
  """The step-0 train state, replicated over ``mesh``.

  ``batch_stats`` are in it only when the model has any (frozen BN): so checkpoints hold them (imported
  statistics, which ``mrcnn_jax.load`` reads back) and GroupNorm models' checkpoints keep their layout.
  """
  def init(params, batch_stats):
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             # A stream apart from nnx.Rngs(seed)'s fold_in(PRNGKey(seed), n) used to initialise the model.
             "rng": jax.random.split(jax.random.PRNGKey(seed))[1]}
    return {**state, "batch_stats": batch_stats} if batch_stats else state
  return jax.jit(init, out_shardings=mesh_lib.replicated(mesh))(params, batch_stats)


def variables(state: TrainState) -> tuple[nnx.State, nnx.State]:
  """``(params, batch_stats)`` of ``state``, for ``nnx.merge(graphdef, *variables(state))``."""
  return state["params"], state.get("batch_stats", nnx.State({}))


def make_train_step(graphdef: nnx.GraphDef, train: ConfigDict, global_batch: int, mesh: Mesh,
                    freeze_at: int = 0) -> Callable[[TrainState, dict, dict], tuple[TrainState, dict]]:
  """Returns ``step(state, batch, lengths) -> (state, metrics)``, jitted over ``mesh``.

  The optimizer is ``optimizer.make_optimizer(train, global_batch, freeze_at)`` with its lr schedule's
  lengths taken from ``lengths`` (``optimizer.schedule_lengths``): inputs of the step, so a re-planned
  schedule runs the same compiled step. ``batch``: global arrays from ``mesh.global_batch``. ``metrics``: every loss
  term, ``loss`` (their sum), ``grad_norm`` (over trainable parameters), ``lr`` and ``finite`` (all
  of these are finite). A step whose losses or gradients are not finite leaves the state untouched,
  so a bad batch can never reach a checkpoint; the loop stops on ``finite == False``.
  """
  replicated = mesh_lib.replicated(mesh)

  def loss_fn(params, batch_stats, batch, key):
    losses = nnx.merge(graphdef, params, batch_stats).losses(batch, key)
    return sum(losses.values()), losses

  def trainable_only(grads):
    if freeze_at <= 0:
      return grads
    labels = optimizer_lib.frozen_labels(grads, freeze_at)
    return jax.tree.map(lambda g, lab: jnp.zeros_like(g) if lab == "frozen" else g, grads, labels)

  def step(state, batch, lengths):
    tx, schedule = optimizer_lib.make_optimizer(train, global_batch, freeze_at, lengths)
    key = jax.random.fold_in(state["rng"], state["step"])
    (total, losses), grads = jax.value_and_grad(loss_fn, has_aux=True)(*variables(state), batch, key)
    grad_norm = optax.tree.norm(trainable_only(grads))
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new = {**state, "step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
           "opt_state": opt_state}
    finite = jnp.isfinite(grad_norm) & jnp.all(jnp.stack([jnp.isfinite(v) for v in losses.values()]))
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    metrics = {**losses, "loss": total, "grad_norm": grad_norm, "lr": schedule(state["step"]),
               "finite": finite}
    return new, metrics

  return jax.jit(step, in_shardings=(replicated, mesh_lib.batch_sharded(mesh), replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)
