"""Orbax checkpoints of the train state together with the grain data-iterator position.

Layout: ``<workdir>/checkpoints/<step>/{state,data}``. ``state`` holds the train state
(``step, params, [batch_stats,] opt_state, rng``, see train_step.py); ``data`` holds one small JSON file per process
with that process's grain iterator state, so a resumed run continues with exactly the batches an
uninterrupted run would have seen. Saves are asynchronous (training continues while arrays are
written); a checkpoint directory appears under its final name only once complete, so a run killed
mid-save resumes from the previous one.
"""

from __future__ import annotations

import os

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from mrcnn_jax.errors import UserError
from mrcnn_jax.train import mesh as mesh_lib

VARIABLES = ("params", "batch_stats")  # the model's part of a checkpoint's state


def checkpoint_dir(workdir: str) -> str:
  """``<workdir>/checkpoints``, made absolute for local paths (Orbax requires it; gs:// stays as is)."""
  path = os.path.join(workdir, "checkpoints")
  return path if "://" in path else os.path.abspath(path)


class Checkpointer:
  """Async saving, keep-last-N and resume for (train state, data iterator) pairs."""

  def __init__(self, workdir: str, *, keep: int):
    self.manager = ocp.CheckpointManager(
        checkpoint_dir(workdir),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iter) -> bool:
    """Starts an async save of ``state`` and the iterator position (no-op if ``step`` is saved)."""
    if step in self.manager.all_steps():
      return False
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iter)),
        force=True)
    return True

  def restore(self, state_like, data_iter, mesh: Mesh):
    """Restores the newest checkpoint that restores into the structure of ``state_like`` (a newer
    unreadable one is renamed ``<step>.unreadable``, with a warning, so that the run saves it anew).

    Arrays come back replicated over ``mesh``; ``data_iter`` is moved to the saved position in place.
    Returns the restored state, or None when there is no checkpoint.
    """
    sharding = mesh_lib.replicated(mesh)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          state_like)
    found = newest_restorable(self.manager, lambda step: self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=grain.checkpoint.CheckpointRestore(data_iter))))
    if found is None:
      return None
    step, restored = found
    unreadable = [s for s in self.manager.all_steps() if s > step]
    if unreadable:
      if jax.process_index() == 0:
        for s in unreadable:
          path = self.manager.directory / str(s)
          path.rename(path.parent / f"{s}.unreadable")
      multihost_utils.sync_global_devices("unreadable checkpoints renamed")
      self.manager.reload()
    return restored["state"]

  def wait(self):
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def newest_restorable(manager: ocp.CheckpointManager, restore) -> tuple[int, object] | None:
  """``(step, restore(step))`` for the newest of ``manager``'s steps that restores (None: no steps).

  A newer step that does not (half written, or half deleted) is skipped with a warning naming it;
  when none restores, a UserError names them all and the newest one's error."""
  failed = {}
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = restore(step)
    except Exception as e:  # pylint: disable=broad-except  (Orbax and tensorstore raise many types)
      failed[step] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
      continue
    for skipped, error in failed.items():
      logging.warning("checkpoint %s/%d cannot be read (%s): using step %d instead", manager.directory,
                      skipped, error, step)
    return step, restored
  if failed:
    newest = max(failed)
    raise UserError(f"no checkpoint under {manager.directory} can be read: steps "
                    f"{', '.join(map(str, sorted(failed)))} (step {newest}: {failed[newest]})")
  return None


def save_imported(workdir: str, params, batch_stats, step: int = 0) -> None:
  """Writes imported weights as checkpoint ``step``: ``state`` = {step, params, batch_stats} (no
  optimizer state, no data position), which ``restore_variables`` (so ``mrcnn_jax.load``) reads."""
  manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=ocp.CheckpointManagerOptions(create=True))
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(
      {"step": jax.numpy.int32(step), "params": params, "batch_stats": batch_stats})), force=True)
  manager.wait_until_finished()
  manager.close()


def _restore_saved(workdir: str, step: int | None, target_of) -> dict:
  """Checkpoint ``step`` (default: latest) of ``workdir``: the entries of its ``state`` that
  ``target_of(saved)`` picks from the saved tree of array metadata, as a tree of ShapeDtypeStructs,
  restored on this process's first device whatever the topology that saved them."""
  manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=ocp.CheckpointManagerOptions(
      read_only=True, save_interval_steps=0, create=False))  # the values read_only implies: no warnings
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def restore(step):
    saved = ocp.PyTreeCheckpointer().metadata(os.path.join(checkpoint_dir(workdir), str(step), "state"))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          target_of(saved.item_metadata))
    return manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)))
  found = restore(step) if step is not None else newest_restorable(manager, restore)
  manager.close()
  if found is None:
    raise UserError(f"no checkpoint under {checkpoint_dir(workdir)}: has training in {workdir!r} "
                    "saved one yet?")
  return dict((found if step is not None else found[1])["state"])


def restore_variables(workdir: str, like: dict, step: int | None = None) -> dict:
  """The model variables of a checkpoint (for inference: ``mrcnn_jax.load``).

  ``like``: {"params": the ``nnx.State`` of ``nnx.Param``s of a freshly built model (or its abstract
  version from ``nnx.eval_shape``), optionally "batch_stats": its ``nnx.BatchStat``s}. Returns the same
  structure with the saved values, for the entries the checkpoint holds ("params" always;
  "batch_stats" when the model has frozen BatchNorm: imported weights and training checkpoints of
  such models hold them, see ``save_imported`` and ``train_step.init_state``).
  """
  return _restore_saved(workdir, step, lambda saved: {key: value for key, value in like.items()
                                                      if key in saved.keys()})


def read_variables(workdir: str, step: int | None = None) -> dict[str, dict[str, np.ndarray]]:
  """A checkpoint's "params" and "batch_stats" as saved, whatever model saved them:
  ``{"params": {"backbone/bottom_up/stem/conv/kernel": array, ...}, "batch_stats": {...}}``
  (an entry the checkpoint lacks is empty)."""
  def variables(saved):
    return {key: saved[key] for key in VARIABLES if key in saved.keys()}
  restored = _restore_saved(workdir, step, variables)
  return {key: {_path(path): np.asarray(array)
                for path, array in jax.tree_util.tree_leaves_with_path(restored.get(key, {}))}
          for key in VARIABLES}


def _path(key_path) -> str:
  """A saved leaf's key path -> "a/b/c" (without the ``value`` key under which nnx Variables save)."""
  names = [str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))) for key in key_path]
  return "/".join(names[:-1] if names[-1] == "value" else names)
