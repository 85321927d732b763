"""SGD with momentum (or AdamW), warmup + step decay, masked weight decay and frozen backbone stages.

Follows Detectron2's recipe: ``lr = base_lr * global_batch / 16`` (linear scaling rule); linear
warmup from ``warmup_factor * lr`` over ``warmup_steps``; ``x0.1`` at each of ``decay_steps`` (or,
with ``lr_schedule = "cosine"``, a half cosine from the peak to 0 over the run);
weight decay added to the gradient (as ``torch.optim.SGD`` does) on conv/dense kernels only, never
on norm scales or biases; optional global-norm gradient clipping. Parameters of the stages frozen
by ``config.model.freeze_at`` get exactly zero updates and no momentum buffers.
``config.train.optimizer = "adamw"`` swaps SGD for AdamW (decoupled weight decay, same mask and
schedule): not the paper's recipe, but far fewer steps from scratch on small synthetic data.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

REFERENCE_BATCH = 16
NO_DECAY_NAMES = frozenset({"bias", "scale"})


def scaled_lr(base_lr: float, global_batch: int) -> float:
  """The linear scaling rule: ``base_lr`` is the rate for a global batch of 16 images."""
  return base_lr * global_batch / REFERENCE_BATCH


SCHEDULES = ("step", "cosine")


def lr_schedule(peak_lr: float, warmup_steps: int, warmup_factor: float,
                decay_steps: Sequence[int] | jax.Array, decay_factor: float = 0.1, kind: str = "step",
                total_steps: int | jax.Array = 0) -> optax.Schedule:
  """``step -> lr``: linear warmup from ``warmup_factor * peak_lr``, times the decay of ``kind``:
  "step", x``decay_factor`` at each of ``decay_steps`` (Detectron2's WarmupMultiStepLR), or
  "cosine", 0.5 * (1 + cos(pi * step / total_steps)) down to 0 at ``total_steps`` (WarmupCosineLR).
  ``decay_steps`` and ``total_steps`` may be traced (see ``schedule_lengths``)."""
  if kind not in SCHEDULES:
    raise ValueError(f"config.train.lr_schedule must be one of {SCHEDULES}, got {kind!r}")
  boundaries = jnp.sort(jnp.asarray(decay_steps, jnp.int32).reshape(-1))

  def schedule(step):
    step = jnp.asarray(step, jnp.int32)
    alpha = jnp.clip(step / max(warmup_steps, 1), 0.0, 1.0)
    warmup = jnp.where(step < warmup_steps, warmup_factor * (1 - alpha) + alpha, 1.0)
    if kind == "cosine":
      decay = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(step / total_steps, 1.0)))
    else:
      decay = decay_factor ** jnp.sum(step >= boundaries)
    return peak_lr * warmup * decay

  return schedule


def _names(path) -> tuple:
  """Pytree key path -> plain names / indices, without the ``.value`` attribute of nnx Variables."""
  names = tuple(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))) for key in path)
  return names[:-1] if names and isinstance(path[-1], jax.tree_util.GetAttrKey) else names


def decay_mask(params):
  """True where weight decay applies: tensors of rank >= 2 (kernels) not named ``bias``/``scale``."""
  def rule(path, x):
    names = _names(path)
    return x.ndim >= 2 and not (names and names[-1] in NO_DECAY_NAMES)
  return jax.tree_util.tree_map_with_path(rule, params)


def stage_of(path) -> int | None:
  """ResNet stage number of a backbone parameter (1 = stem, 2 = res2, ...), None elsewhere.

  The trunk is ``backbone/[bottom_up/]stem/...`` and ``backbone/[bottom_up/]res<k>/...`` (model/resnet.py);
  C4's res5 lives in the RoI heads and is never frozen, as in Detectron2.
  """
  names = _names(path)
  if not names or names[0] != "backbone":
    return None
  for name in names:
    if name == "stem":
      return 1
    if isinstance(name, str) and name.startswith("res") and name[3:].isdigit():
      return int(name[3:])
  return None


def frozen_labels(params, freeze_at: int):
  """``"frozen"`` for parameters in stages ``<= freeze_at`` (Detectron2's FREEZE_AT), else ``"train"``."""
  def rule(path, _):
    stage = stage_of(path)
    return "frozen" if stage is not None and stage <= freeze_at else "train"
  return jax.tree_util.tree_map_with_path(rule, params)


def schedule_lengths(train: ConfigDict) -> dict[str, np.ndarray]:
  """The lr schedule's lengths in ``config.train``, as the train step's inputs: ``{"steps": int32 [],
  "decay_steps": int32 [k]}``. A time budget's re-plan changes their values, not their shapes, so the
  compiled step runs the new schedule without compiling again."""
  return {"steps": np.asarray(train.steps, np.int32),
          "decay_steps": np.asarray(train.decay_steps, np.int32).reshape(-1)}


def make_optimizer(train: ConfigDict, global_batch: int, freeze_at: int = 0,
                   lengths: dict | None = None) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer and its learning-rate schedule from ``config.train``.

  Reads ``optimizer`` ("sgd" | "adamw"), ``base_lr, warmup_steps, warmup_factor, lr_schedule,
  decay_steps, steps, momentum, weight_decay, clip_norm`` (``clip_norm <= 0`` or None: no clipping).
  ``lengths`` (``schedule_lengths``, possibly traced) replaces ``steps`` and ``decay_steps`` in the
  schedule; the optimizer state's structure does not depend on them.
  """
  if train.optimizer not in ("sgd", "adamw"):
    raise ValueError(f"config.train.optimizer must be 'sgd' or 'adamw', got {train.optimizer!r}")
  if train.lr_schedule == "cosine" and train.steps <= 0:
    raise ValueError(f"the cosine schedule needs config.train.steps > 0, got {train.steps}")
  lengths = schedule_lengths(train) if lengths is None else lengths
  schedule = lr_schedule(scaled_lr(train.base_lr, global_batch), train.warmup_steps,
                         train.warmup_factor, lengths["decay_steps"], kind=train.lr_schedule,
                         total_steps=lengths["steps"])
  parts = []
  if train.clip_norm and train.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train.clip_norm))
  if train.optimizer == "adamw":
    parts.append(optax.adamw(schedule, weight_decay=train.weight_decay, mask=decay_mask))
  else:
    if train.weight_decay:
      parts.append(optax.add_decayed_weights(train.weight_decay, mask=decay_mask))
    parts += [optax.trace(decay=train.momentum), optax.scale_by_learning_rate(schedule)]
  tx = optax.chain(*parts)
  if freeze_at > 0:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               lambda params: frozen_labels(params, freeze_at))
  return tx, schedule
