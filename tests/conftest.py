"""Shared test setup: CPU, compile-light XLA, and a tiny model config + synthetic batch (batch_spec)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MRCNN_JAX_COMPILATION_CACHE", "off")  # CLIs run by tests write no ~/.cache

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from mrcnn_jax import configs  # noqa: E402
from mrcnn_jax.data import batch_spec  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)


def tiny_config(**model_overrides):
  """The ``tiny`` preset (64 px canvas, width-8 ResNet-18-FPN, a few RoIs) with ``config.model`` overrides
  given as dotted keys relative to ``model`` (``head="c4"``, ``**{"roi.fc_dim": 64}``)."""
  from mrcnn_jax.configs import tiny  # pylint: disable=import-outside-toplevel
  return configs.override(tiny.get_config(), {f"model.{k}": v for k, v in model_overrides.items()})


def synthetic_batch(config, batch_size=2, num_instances=2, seed=0):
  """A batch (``mrcnn_jax.data.batch_spec``) of random-texture images with filled rectangles as
  instances whose masks fill their boxes; with keypoints, K visible ones on each box's diagonal."""
  d = config.data
  num_keypoints = config.model.keypoint.num_keypoints
  blank = batch_spec.blank_example((d.canvas, d.canvas), d.max_instances, d.gt_mask_size, num_keypoints)
  batch = {name: np.stack([value] * batch_size) for name, value in blank.items()}
  rng = np.random.default_rng(seed)
  c = d.canvas
  batch["image"] = rng.integers(0, 60, (batch_size, c, c, 3)).astype(np.uint8)
  batch["image_id"] = np.arange(batch_size, dtype=np.int64)
  for b in range(batch_size):
    for i in range(num_instances):
      x1, y1 = rng.integers(0, c // 2, 2)
      w, h = rng.integers(c // 6, c // 2, 2)
      batch["gt_boxes"][b, i] = x1, y1, x1 + w, y1 + h
      batch["gt_classes"][b, i] = 1 + (b + i) % config.num_classes
      batch["image"][b, y1:y1 + h, x1:x1 + w] = 60 * batch["gt_classes"][b, i]
      if num_keypoints:
        along = (np.arange(num_keypoints)[:, None] + 0.5) / num_keypoints
        batch["gt_keypoints"][b, i] = np.concatenate([[x1, y1] + along * [w, h], np.full((num_keypoints, 1), 2)], 1)
  batch["gt_valid"][:, :num_instances] = True
  batch["gt_masks"][:, :num_instances] = 1
  batch_spec.check_batch(batch, config)
  return batch


def _train_step(model, optimizer, batch, key):
  def loss_fn(model):
    losses = model.losses(batch, key)
    return sum(losses.values()), losses
  (_, losses), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  return losses, grads


# One jitted function object per model method, shared by all tests: models built from equal configs
# have equal graph definitions, so their tests reuse one compiled program (~10-40 s each on 2 cores).
_jitted_train_step = nnx.jit(_train_step)
_jitted_features = nnx.jit(lambda model, image: model.features(image))
_jitted_losses = nnx.jit(lambda model, batch, key: model.losses(batch, key))
_jitted_detect = nnx.jit(lambda model, image, image_size: model.detect(image, image_size))


@pytest.fixture(scope="session")
def train_step():
  """A jitted plain train step (model, nnx.Optimizer, batch, key) -> (losses, grads), shared by tests."""
  return _jitted_train_step


@pytest.fixture(scope="session")
def jit_features():
  """Jitted ``model.features`` (model, image) -> (rpn_features, pool_features), shared by tests."""
  return _jitted_features


@pytest.fixture(scope="session")
def jit_losses():
  """Jitted ``model.losses`` (model, batch, key) -> losses, shared by tests."""
  return _jitted_losses


@pytest.fixture(scope="session")
def jit_detect():
  """Jitted ``model.detect`` (model, image, image_size) -> detections, shared by tests."""
  return _jitted_detect


@pytest.fixture(scope="session")
def make_config():
  """tiny_config(**model_overrides) as a fixture."""
  return tiny_config


@pytest.fixture(scope="session")
def make_batch():
  """synthetic_batch(config, batch_size, num_instances, seed) as a fixture."""
  return synthetic_batch
