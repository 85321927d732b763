"""The model on canvases of any (h, w): anchors follow the canvas, padding semantics, losses and detect."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mrcnn_jax import build_model
from mrcnn_jax.model.rpn import anchors

_features = nnx.jit(lambda model, image, size: model.features(image, size))


def test_anchors_cover_a_non_square_canvas_level_by_level():
  levels = anchors((64, 96), None, (8, 16, 32, 64, 128), (0.5, 1.0, 2.0), False)
  assert [len(a) for a in levels] == [16 * 24 * 3, 8 * 12 * 3, 4 * 6 * 3, 2 * 3 * 3, 1 * 2 * 3]
  centres = (levels[0][:, :2] + levels[0][:, 2:]) / 2
  assert centres[:, 0].max() == 23 * 4 and centres[:, 1].max() == 15 * 4  # x along the 96 px width


@pytest.mark.parametrize("padding", ["black", "normalized"])
def test_what_the_padding_is_made_of(make_config, padding):
  """normalized: the canvas outside image_size is zero after normalising, whatever its pixels; black:
  the uint8 zeros are normalised like the image (so other pixels there change the features)."""
  model = build_model(make_config(padding=padding))
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (1, 64, 96, 3)).astype(np.uint8)
  size = jnp.asarray([[40, 70]])
  other = image.copy()
  other[:, 40:], other[:, :, 70:] = 255, 255
  first, second = _features(model, jnp.asarray(image), size)[0][0], _features(model, jnp.asarray(other), size)[0][0]
  same = np.array_equal(np.asarray(first), np.asarray(second))
  assert same == (padding == "normalized")


def test_losses_and_detect_on_a_non_square_canvas(make_config, make_batch, jit_losses, jit_detect):
  config = make_config()
  model = build_model(config)
  batch = make_batch(config)
  wide = {k: v for k, v in batch.items()}
  wide["image"] = np.concatenate([batch["image"], np.zeros_like(batch["image"][:, :, :32])], axis=2)  # 64x96
  losses = jit_losses(model, {k: jnp.asarray(v) for k, v in wide.items()}, jax.random.key(0))
  assert all(np.isfinite(float(v)) for v in losses.values())
  det = jit_detect(model, jnp.asarray(wide["image"]), jnp.asarray(wide["image_size"]))
  boxes = np.asarray(det["boxes"])[np.asarray(det["valid"])]
  assert (boxes[:, [2, 3]] <= [64, 64]).all()  # clipped to the image (64 x 64 on the 64 x 96 canvas)
