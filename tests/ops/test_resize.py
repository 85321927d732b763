"""Tests for mrcnn_jax.ops.resize: TensorFlow's half-pixel bilinear as an independent reference, a hand-computed
case, traced sizes, the zero border, and torchvision's own resized input when its natural-size oracle exists
(``$MRCNN_TV_ORACLE``/natural, else ../tv_oracle/natural beside the repository; made by
scripts/oracles/tv_natural_oracle.py in a private torch venv)."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_jax.data.resize import torchvision_resized_size
from mrcnn_jax.ops.resize import resize_bilinear

TV_NATURAL = os.path.join(os.environ.get("MRCNN_TV_ORACLE", os.path.join(os.path.dirname(__file__),
                                                                        "../../../tv_oracle")), "natural")
EPS = np.finfo(np.float32).eps


def padded(rng, in_hw, shape, c=3):
  """Random content [in_h, in_w, c] in [-3, 3] at the top-left of a [*shape, c] array of 1e6s."""
  image = np.full((*shape, c), 1e6, np.float32)
  image[:in_hw[0], :in_hw[1]] = rng.uniform(-3, 3, (*in_hw, c))
  return image


def test_hand_computed_2x2_to_3x3():
  # ratio 2/3: sources -1/6 -> 0 (clamped), 0.5, 7/6 -> row 1 (no row 2): weights 0, 0.5, 0 on the upper tap
  image = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)[:, :, None]
  got = np.asarray(resize_bilinear(image, (2, 2), (3, 3), (3, 3)))[:, :, 0]
  np.testing.assert_array_equal(got, [[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]])


@pytest.mark.parametrize("in_hw,out_hw", [((40, 60), (80, 120)), ((30, 45), (80, 120)), ((37, 53), (64, 29)),
                                          ((64, 48), (21, 17)), ((25, 31), (25, 70)), ((17, 23), (17, 23)),
                                          ((1, 9), (5, 4))])
def test_matches_tensorflow_half_pixel_bilinear(in_hw, out_hw):
  # TF's kernel computes the same float32 source coordinate (in / out) * (d + 0.5) - 0.5, with two roundings
  # as op-by-op evaluation here does (torch's CPU kernel, like a fused jit program, rounds it once with a
  # fused multiply-add: TF and torch then differ by up to ~4e-5 on normalised photographs). TF keeps a
  # negative coordinate (torch clamps it at 0) but then reads row 0 twice, and it interpolates as
  # a + (b - a) * t where torch does a * (1 - t) + b * t: the same values up to a few roundings of |x| <= 3.
  rng = np.random.default_rng(sum(in_hw + out_hw))
  image = padded(rng, in_hw, (in_hw[0] + 5, in_hw[1] + 3))
  want = tf.image.resize(image[:in_hw[0], :in_hw[1]], out_hw, method="bilinear", antialias=False).numpy()
  got = np.asarray(resize_bilinear(image, in_hw, out_hw, out_hw))
  np.testing.assert_allclose(got, want, rtol=0, atol=4 * 3 * EPS)


def test_traced_sizes_under_jit_equal_eager_with_one_compile():
  # A fused program may round src = ratio * (d + 0.5) - 0.5 once (a fused multiply-add) where op-by-op
  # evaluation rounds twice: under 2 ulps of src < 128 (2^-17 each) on a weight, times a neighbour
  # difference <= 6, on each axis; plus a few roundings of |x| <= 3.
  atol = 2 * 6 * 2 * 2.0**-17 + 4 * 3 * EPS
  traces = []

  @jax.jit
  def resize(image, in_hw, out_hw):
    traces.append(None)
    return resize_bilinear(image, in_hw, out_hw, (96, 128))

  image = padded(np.random.default_rng(0), (50, 70), (64, 80))
  for in_hw, out_hw in [((50, 70), (96, 128)), ((30, 45), (80, 120)), ((64, 80), (61, 77)), ((7, 5), (20, 3))]:
    image[:in_hw[0], :in_hw[1]] = np.random.default_rng(in_hw[0]).uniform(-3, 3, (*in_hw, 3))
    got = np.asarray(resize(image, np.array(in_hw), np.array(out_hw)))
    want = np.asarray(resize_bilinear(image, in_hw, out_hw, (96, 128)))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
  assert len(traces) == 1


def test_zeros_outside_out_size():
  image = padded(np.random.default_rng(1), (30, 45), (32, 48))
  small = np.asarray(resize_bilinear(image, (30, 45), (50, 75), (50, 75)))
  big = np.asarray(resize_bilinear(image, (30, 45), (50, 75), (64, 96)))
  np.testing.assert_array_equal(big[:50, :75], small)
  assert not big[50:].any() and not big[:, 75:].any()


def test_torchvision_resized_size():
  assert torchvision_resized_size(400, 600, 800, 1333) == (800, 1200)
  assert torchvision_resized_size(300, 451, 800, 1333) == (800, 1202)    # Detectron2's int(x + 0.5): 1203
  assert torchvision_resized_size(512, 352, 800, 1333) == (1163, 800)    # portrait
  assert torchvision_resized_size(385, 500, 800, 1333) == (799, 1038)    # 385 * (800 / 385) < 800: floored
  assert torchvision_resized_size(200, 1000, 800, 1333) == (266, 1333)   # the long side's cap


def _natural():
  path = os.path.join(TV_NATURAL, "tv_outputs.npz")
  if not os.path.exists(path):
    pytest.skip(f"no torchvision natural-size oracle at {path}: make it with scripts/oracles/tv_natural_oracle.py")
  with open(os.path.join(TV_NATURAL, "meta.json")) as f:
    return np.load(path), json.load(f)


def test_sizes_match_torchvision_oracle():
  npz, meta = _natural()
  for i, entry in enumerate(meta["per_image"]):
    h, w = npz[f"img{i}_image"].shape[:2]
    assert torchvision_resized_size(h, w, 800, 1333) == tuple(npz[f"img{i}_resized_hw"]), entry["photo"]
    assert tuple(-(-np.array(npz[f"img{i}_resized_hw"]) // 32) * 32) == tuple(npz[f"img{i}_padded_hw"])


def test_matches_torchvision_input_tensor():
  # torch's input to the backbone: uint8 / 255, (x - mean) / std, then bilinear, then zero padding, all
  # float32. The normalisation is repeated here op for op. Image 0 is scaled by exactly 2: every source
  # coordinate and weight (1/4, 3/4) is exact, and the result, a convex combination of four |x| <= 2.7
  # values, can differ only by the order of its roundings (fused multiply-adds or not): a few ulps of 2.7.
  npz, _ = _natural()
  image, want = npz["img0_image"], npz["img0_input"][0].transpose(1, 2, 0)
  mean = np.array([0.485, 0.456, 0.406], np.float32)
  std = np.array([0.229, 0.224, 0.225], np.float32)
  x = (image.astype(np.float32) / np.float32(255) - mean) / std
  got = np.asarray(resize_bilinear(x, image.shape[:2], npz["img0_resized_hw"], want.shape[:2]))
  np.testing.assert_allclose(got, want, rtol=0, atol=4 * 2.7 * EPS)
