"""Shared test setup: CPU, compile-light XLA, and a tiny model config + synthetic batch."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)


def tiny_config(**model_overrides):
  """shapes_tiny shrunk further: 64 px canvas, width-8 ResNet-18-FPN, a few RoIs."""
  from mrcnn_jax.configs import shapes_tiny
  config = shapes_tiny.get_config()
  d, m = config.data, config.model
  d.canvas, d.min_size, d.max_size, d.max_instances, d.gt_mask_size = 64, 64, 64, 4, 16
  m.width, m.fpn_channels = 8, 16
  m.rpn.batch_per_image, m.rpn.pre_nms_topk_train, m.rpn.post_nms_topk_train = 32, 64, 32
  m.rpn.pre_nms_topk_test, m.rpn.post_nms_topk_test = 64, 32
  m.roi.batch_per_image, m.roi.fc_dim = 16, 32
  m.roi.candidates_per_image, m.roi.detections_per_image = 64, 8
  m.mask.conv_dim, m.mask.num_convs, m.mask.mlp_dim, m.mask.rois_per_image = 8, 2, 32, 0
  for key, value in model_overrides.items():
    target = m
    *path, leaf = key.split(".")
    for p in path:
      target = target[p]
    target[leaf] = value
  return config


def synthetic_batch(config, batch_size=2, num_instances=2, seed=0):
  """Random-texture images with filled rectangles as instances, in the pipeline's batch format."""
  rng = np.random.default_rng(seed)
  c, g, mg = config.data.canvas, config.data.max_instances, config.data.gt_mask_size
  image = rng.integers(0, 60, (batch_size, c, c, 3)).astype(np.uint8)
  boxes = np.zeros((batch_size, g, 4), np.float32)
  classes = np.zeros((batch_size, g), np.int32)
  for b in range(batch_size):
    for i in range(num_instances):
      x1, y1 = rng.integers(0, c // 2, 2)
      w, h = rng.integers(c // 6, c // 2, 2)
      boxes[b, i] = x1, y1, x1 + w, y1 + h
      classes[b, i] = 1 + (b + i) % config.num_classes
      image[b, y1:y1 + h, x1:x1 + w] = 60 * classes[b, i]
  valid = np.arange(g)[None].repeat(batch_size, 0) < num_instances
  return {
      "image": image,
      "image_size": np.full((batch_size, 2), c, np.int32),
      "scale": np.ones((batch_size,), np.float32),
      "original_size": np.full((batch_size, 2), c, np.int32),
      "image_id": np.arange(batch_size, dtype=np.int64),
      "gt_boxes": boxes,
      "gt_classes": classes,
      "gt_masks": np.where(valid[..., None, None], 1, 0).astype(np.uint8) * np.ones((1, 1, mg, mg), np.uint8),
      "gt_valid": valid,
      "gt_crowd": np.zeros((batch_size, g), bool),
  }


def _train_step(model, optimizer, batch, key):
  def loss_fn(model):
    losses = model.losses(batch, key)
    return sum(losses.values()), losses
  (_, losses), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  return losses, grads


_jitted_train_step = nnx.jit(_train_step)


@pytest.fixture(scope="session")
def train_step():
  """A jitted plain train step (model, nnx.Optimizer, batch, key) -> (losses, grads), shared by tests."""
  return _jitted_train_step


@pytest.fixture(scope="session")
def make_config():
  """tiny_config(**model_overrides) as a fixture."""
  return tiny_config


@pytest.fixture(scope="session")
def make_batch():
  """synthetic_batch(config, batch_size, num_instances, seed) as a fixture."""
  return synthetic_batch
