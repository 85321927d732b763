"""Optimizer: schedule values, weight-decay mask, frozen stages, SGD semantics (torch.optim.SGD)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mrcnn_jax import configs
from mrcnn_jax.configs import base, shapes_tiny
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import optimizer


def train_config(**overrides):
  """The base config's train section with the schedule these tests pin, and ``overrides``."""
  return configs.override(base.get_config(), {
      "train.optimizer": "sgd", "train.base_lr": 0.02, "train.warmup_steps": 200, "train.warmup_factor": 0.001,
      "train.lr_schedule": "step", "train.decay_steps": (2400, 2800), "train.steps": 3000, "train.momentum": 0.9,
      "train.weight_decay": 1e-4, "train.clip_norm": 0.0, **{f"train.{k}": v for k, v in overrides.items()}}).train


@pytest.fixture(scope="module")
def model_params():
  """Parameters of the tiny real model (concrete ones, cheap: built under eval_shape)."""
  abstract = nnx.eval_shape(lambda: build_model(shapes_tiny.get_config()))
  params = nnx.state(abstract, nnx.Param)
  return jax.tree.map(lambda x: jnp.ones(x.shape, x.dtype), params)


def flat(tree):
  return {optimizer._names(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("step, factor", [
    (0, 0.001), (100, 0.001 * 0.5 + 0.5), (199, 0.001 * 0.005 + 0.995), (200, 1.0), (2399, 1.0),
    (2400, 0.1), (2799, 0.1), (2800, 0.01), (10_000, 0.01)])
def test_schedule_warmup_then_step_decay(step, factor):
  _, schedule = optimizer.make_optimizer(train_config(), global_batch=8)
  peak = 0.02 * 8 / 16                                       # linear scaling rule
  np.testing.assert_allclose(schedule(step), peak * factor, rtol=1e-6)


@pytest.mark.parametrize("step, factor", [
    (0, 0.001), (100, (0.001 * 0.5 + 0.5) * (1 + np.cos(np.pi * 100 / 3000)) / 2), (200, 0.9890738),
    (1500, 0.5), (2250, 0.1464466), (3000, 0.0), (5000, 0.0)])
def test_cosine_schedule_follows_warmup_then_half_cosine_to_zero(step, factor):
  _, schedule = optimizer.make_optimizer(train_config(lr_schedule="cosine", steps=3000), global_batch=16)
  np.testing.assert_allclose(schedule(step), 0.02 * factor, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kind", ["step", "cosine"])
def test_a_schedule_compiled_once_takes_another_plans_lengths(kind):
  """The train step gets ``schedule_lengths`` as inputs: one compiled schedule, given a re-plan's
  lengths, is that plan's own schedule."""
  configured = train_config(lr_schedule=kind, steps=3000)
  replanned = train_config(lr_schedule=kind, steps=1200, decay_steps=(960, 1120))
  lr = jax.jit(lambda lengths, steps: jax.vmap(optimizer.make_optimizer(configured, 16, lengths=lengths)[1])(steps))
  steps = jnp.asarray([0, 100, 959, 960, 1119, 1120, 1199, 2500])
  for plan in (replanned, configured):
    want = jax.vmap(optimizer.make_optimizer(plan, 16)[1])(steps)
    np.testing.assert_allclose(lr(optimizer.schedule_lengths(plan), steps), want, rtol=1e-6)
  assert lr._cache_size() == 1


def test_unknown_schedule_raises():
  with pytest.raises(ValueError, match="lr_schedule"):
    optimizer.make_optimizer(train_config(lr_schedule="poly", steps=10), global_batch=16)


def test_decay_mask_excludes_norm_scales_and_biases(model_params):
  mask = flat(optimizer.decay_mask(model_params))
  shapes = {path: leaf.shape for path, leaf in flat(model_params).items()}
  stem = ("backbone", "bottom_up", "stem")
  assert (*stem, "norm", "scale") in mask and not mask[(*stem, "norm", "scale")]
  assert not mask[(*stem, "norm", "bias")]
  assert mask[(*stem, "conv", "kernel")]
  for path, decayed in mask.items():
    assert decayed == (path[-1] == "kernel"), (path, shapes[path])


def test_freeze_at_two_freezes_stem_and_res2_only(model_params):
  labels = flat(optimizer.frozen_labels(model_params, freeze_at=2))
  frozen = {path for path, label in labels.items() if label == "frozen"}
  in_stem_or_res2 = lambda p: p[:3] in (("backbone", "bottom_up", "stem"), ("backbone", "bottom_up", "res2"))
  assert frozen and all(in_stem_or_res2(p) for p in frozen)
  assert {p for p in labels if in_stem_or_res2(p)} == frozen

  tx, _ = optimizer.make_optimizer(train_config(warmup_steps=0), global_batch=16, freeze_at=2)
  state = tx.init(model_params)
  updates, _ = jax.jit(tx.update)(model_params, state, model_params)   # gradient = ones
  for path, update in flat(updates).items():
    assert bool(jnp.all(update == 0)) == (path in frozen), path


def test_sgd_matches_torch_semantics():
  """buf = momentum * buf + (g + wd * w) (decay on kernels only); w -= lr * buf."""
  params = {"dense": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([0.5])}}
  grads = {"dense": {"kernel": jnp.array([[0.3, 0.1]]), "bias": jnp.array([-0.2])}}
  lr, wd, m = 0.02, 0.1, 0.9
  tx, _ = optimizer.make_optimizer(train_config(warmup_steps=0, weight_decay=wd, decay_steps=()),
                                   global_batch=16)
  state = tx.init(params)
  expected = jax.tree.map(np.asarray, params)
  buf = jax.tree.map(np.zeros_like, expected)
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    decayed = {"dense": {"kernel": grads["dense"]["kernel"] + wd * expected["dense"]["kernel"],
                         "bias": np.asarray(grads["dense"]["bias"])}}
    buf = jax.tree.map(lambda b, g: m * b + g, buf, decayed)
    expected = jax.tree.map(lambda p, b: p - lr * b, expected, buf)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), params, expected)


def test_clip_by_global_norm():
  params = {"w": jnp.zeros((2, 2))}
  grads = {"w": jnp.full((2, 2), 10.0)}                     # global norm 20
  tx, _ = optimizer.make_optimizer(train_config(warmup_steps=0, clip_norm=1.0), global_batch=16)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(jnp.linalg.norm(updates["w"]), 0.02 * 1.0, rtol=1e-6)
