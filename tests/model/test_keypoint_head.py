"""The keypoint head (Detectron2's KRCNNConvDeconvUpsampleHead): its deconvolution and upsampling against
PyTorch's definitions, the loss on a hand-worked case, and the keypoint branch in training and detection.
Targets and decoding: tests/ops/test_keypoints.py."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mrcnn_jax.model.keypoint_head import Deconv4x4, KRCNNConvDeconvUpsampleHead, keypoint_loss, upsample2x
from mrcnn_jax.model.mask_rcnn import build_model


def test_deconv4x4_is_pytorchs_conv_transpose_with_stride_2_and_padding_1():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  deconv = Deconv4x4(3, 2, rngs=nnx.Rngs(0))
  weight = np.asarray(deconv.kernel[...])  # [kh,kw,Cin,Cout]
  # ConvTranspose2d by definition: input (i, j) adds x * w[kh, kw] at output (2i - 1 + kh, 2j - 1 + kw).
  want = np.zeros((2, 10, 8, 2), np.float32)
  for i in range(5):
    for j in range(4):
      for kh in range(4):
        for kw in range(4):
          oy, ox = 2 * i - 1 + kh, 2 * j - 1 + kw
          if 0 <= oy < 10 and 0 <= ox < 8:
            want[:, oy, ox] += x[:, i, j] @ weight[kh, kw]
  np.testing.assert_allclose(deconv(jnp.asarray(x)), want, atol=1e-5)


def test_upsample2x_is_bilinear_with_align_corners_false():
  # PyTorch: output o samples (o + 0.5) / 2 - 0.5, clamped at 0 and at the last input.
  x = jnp.asarray([0.0, 4.0, 8.0])[None, :, None, None] * jnp.ones((1, 1, 2, 1))
  np.testing.assert_allclose(upsample2x(x)[0, :, 0, 0], [0, 1, 3, 5, 7, 8])
  np.testing.assert_allclose(np.ptp(upsample2x(x)[0, :, :, 0], axis=1), 0)  # constant along the width


def test_head_names_and_shapes():
  head = KRCNNConvDeconvUpsampleHead(16, 5, dim=8, num_convs=3, rngs=nnx.Rngs(0))
  assert [name for name in vars(head) if name.startswith(("conv_fcn", "score"))] == [
      "conv_fcn1", "conv_fcn2", "conv_fcn3", "score_lowres"]
  out = head(jnp.ones((2, 14, 14, 16)))
  assert out.shape == (2, 56, 56, 5) and out.dtype == jnp.float32


def test_loss_on_two_keypoints_worked_by_hand():
  logits = np.zeros((1, 2, 2, 3), np.float32)  # 2 x 2 heatmaps, 3 keypoints
  logits[0, 1, 1, 0] = np.log(3.0)   # keypoint 0 at cell 3: -log(3 / (3 + 3)) = log 2
  logits[0, :, :, 2] = 50.0          # keypoint 2: invalid, ignored however wrong
  labels, valid = jnp.asarray([[3, 1, 0]]), jnp.asarray([[True, True, False]])
  # keypoint 1, uniform over 4 cells: log 4; mean over the 2 valid keypoints.
  np.testing.assert_allclose(keypoint_loss(jnp.asarray(logits), labels, valid), (np.log(2) + np.log(4)) / 2,
                             rtol=1e-6)
  assert float(keypoint_loss(jnp.asarray(logits), labels, jnp.zeros((1, 3), bool))) == 0.0


def keypoint_config(make_config, **overrides):
  return make_config(**{"keypoint.num_keypoints": 3, "keypoint.conv_dim": 8, "keypoint.num_convs": 2,
                        "mask_on": False, **overrides})


def test_training_with_keypoints_and_no_masks(make_config, make_batch, train_step):
  config = keypoint_config(make_config)
  model = build_model(config)
  assert not hasattr(model.roi_heads, "mask_head")
  batch = make_batch(config)
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  history = []
  for _ in range(8):
    losses, grads = train_step(model, optimizer, batch, jax.random.key(0))
    history.append(float(losses["keypoint"]))
  assert set(losses) == {"rpn_cls", "rpn_box", "cls", "box", "keypoint"}
  assert np.log(56 * 56) - 1 < history[0] < np.log(56 * 56) + 1   # about uniform at the start
  assert history[-1] < history[0]
  kernel = grads["roi_heads"]["keypoint_head"]["score_lowres"]["kernel"][...]
  assert np.all(np.isfinite(kernel)) and np.any(kernel != 0)


def test_detect_returns_keypoints_inside_their_boxes(make_config, make_batch):
  config = keypoint_config(make_config, mask_on=True)
  model = build_model(config)
  batch = make_batch(config)
  det = nnx.jit(lambda m, i, s: m.detect(i, s, score_threshold=0.0))(model, batch["image"], batch["image_size"])
  d = config.model.roi.detections_per_image
  assert det["keypoints"].shape == (2, d, 3, 3) and det["masks"].shape == (2, d, 28, 28)
  valid = np.asarray(det["valid"])
  keypoints, boxes = np.asarray(det["keypoints"])[valid], np.asarray(det["boxes"])[valid][:, None]
  assert valid.any()
  assert np.all((keypoints[..., 0] >= boxes[..., 0]) & (keypoints[..., 0] <= np.maximum(boxes[..., 2], boxes[..., 0] + 1)))
  assert np.all((keypoints[..., 1] >= boxes[..., 1]) & (keypoints[..., 1] <= np.maximum(boxes[..., 3], boxes[..., 1] + 1)))
  assert np.all(keypoints[..., 2] > 0)
