"""Hand-worked cases for the model-level functions: RPN losses and proposals, RoI sampling, box losses and
inference, the mask loss (the paper's decoupling) and mask probabilities, and the matmul deconvolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import ConfigDict

from mrcnn_jax.model.fast_rcnn import box_losses, detect_boxes
from mrcnn_jax.model.mask_head import Deconv2x, mask_loss, mask_probabilities
from mrcnn_jax.model.roi_sampling import sample_rois, select_foreground
from mrcnn_jax.model.rpn import propose, rpn_losses

softplus = lambda x: float(np.log1p(np.exp(x)))


def test_rpn_losses_on_a_hand_built_case():
  # Anchor 0 is the GT box (fg), anchor 1 misses it (bg), anchor 2 has IoU 0.5 (between 0.3 and 0.7: ignored).
  anchors = jnp.asarray([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 20]], jnp.float32)
  logits = jnp.asarray([2.0, -1.0, 5.0])
  deltas = jnp.asarray([[0.1, -0.2, 0.3, 0.0], [7, 7, 7, 7], [7, 7, 7, 7]], jnp.float32)
  cfg = ConfigDict(dict(fg_iou=0.7, bg_iou=0.3, batch_per_image=4, positive_fraction=0.5))
  cls, box = rpn_losses(logits, deltas, anchors, gt_boxes=jnp.asarray([[0, 0, 10, 10.0]]),
                        gt_valid=jnp.asarray([True]), gt_crowd=jnp.asarray([False]), key=jax.random.key(0), cfg=cfg)
  np.testing.assert_allclose(cls, softplus(-2.0) + softplus(-1.0), rtol=1e-6)  # BCE of the fg and the bg anchor
  np.testing.assert_allclose(box, 0.6, rtol=1e-6)  # |deltas - 0| of the fg anchor only


def test_propose_drops_narrow_boxes_and_runs_nms_within_each_level():
  level0 = jnp.asarray([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [40, 40, 40.5, 50]], jnp.float32)
  level1 = jnp.asarray([[0, 0, 10, 10]], jnp.float32)  # the same box as level 0's best, on another level
  boxes, valid = propose([jnp.asarray([3.0, 2.0, 1.0, 4.0]), jnp.asarray([0.5])],
                         [jnp.zeros((4, 4)), jnp.zeros((1, 4))], [level0, level1], jnp.asarray([64, 64]),
                         pre_nms_topk=4, post_nms_topk=4, nms_threshold=0.7, min_size=1.0)
  # Score 4 is 0.5 px wide (dropped); score 2 overlaps score 3 by IoU 0.82 (suppressed); level 1 survives.
  np.testing.assert_array_equal(valid, [True, True, True, False])
  np.testing.assert_allclose(boxes, [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10], [0, 0, 0, 0]])


def test_sample_rois_appends_gt_and_puts_foreground_first():
  cfg = ConfigDict(dict(fg_iou=0.5, batch_per_image=8, positive_fraction=0.25))
  proposals = jnp.asarray([[0, 0, 10, 10], [30, 30, 40, 40], [0, 0, 10, 10]], jnp.float32)
  out = sample_rois(proposals, jnp.asarray([True, True, False]),
                    gt_boxes=jnp.asarray([[0, 0, 10, 10], [5, 5, 9, 9]], jnp.float32),
                    gt_classes=jnp.asarray([3, 1]), gt_valid=jnp.asarray([True, False]),
                    gt_crowd=jnp.asarray([False, False]), key=jax.random.key(1), cfg=cfg,
                    box_weights=(10.0, 10.0, 5.0, 5.0))
  # Foreground: proposal 0 and the appended GT box (2 = 8 * 0.25 slots); background: proposal 1; the
  # invalid proposal and the padded GT slot are never sampled.
  np.testing.assert_array_equal(out["classes"], [3, 3, 0, -1, -1, -1, -1, -1])
  np.testing.assert_allclose(out["rois"][:3], [[0, 0, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40]])
  np.testing.assert_array_equal(out["matched"][:2], [0, 0])
  np.testing.assert_allclose(out["box_targets"][:2], 0.0, atol=1e-6)


def test_select_foreground_keeps_sampling_order_and_marks_missing_slots():
  fg, valid = select_foreground(jnp.asarray([3, 0, 2, -1, 0]), 3)
  np.testing.assert_array_equal(fg, [0, 2, 1])
  np.testing.assert_array_equal(valid, [True, True, False])


def test_box_losses_hand_values():
  logits = jnp.zeros((3, 3))                       # K = 2: uniform over background + 2 classes
  deltas = jnp.asarray([[[9, 9, 9, 9], [1, 0, 0, 0]],   # RoI 0 is class 2: only its class-2 deltas count
                        [[5, 5, 5, 5], [5, 5, 5, 5]],   # background: no box loss
                        [[99, 99, 99, 99], [99, 99, 99, 99]]], jnp.float32)  # padding: nothing
  targets = jnp.asarray([[0, 0, 0, 0.5], [1, 1, 1, 1], [1, 1, 1, 1]], jnp.float32)
  cls, box = box_losses(logits, deltas, jnp.asarray([2, 0, -1]), targets)
  np.testing.assert_allclose(cls, np.log(3.0), rtol=1e-6)   # mean over the 2 sampled RoIs
  np.testing.assert_allclose(box, 1.5 / 2, rtol=1e-6)       # L1 of RoI 0 / sampled RoIs


@pytest.mark.parametrize("second_class, survivors", [(1, 1), (2, 2)])
def test_detect_boxes_suppresses_overlaps_of_one_class_only(second_class, survivors):
  proposals = jnp.asarray([[0, 0, 10, 10], [1, 0, 11, 10]], jnp.float32)  # IoU 0.82
  logits = jnp.zeros((2, 3)).at[0, 1].set(5.0).at[1, second_class].set(4.0)
  cfg = ConfigDict(dict(candidates_per_image=10, detections_per_image=5, min_box_size=0.0))
  boxes, scores, classes, valid = detect_boxes(
      logits, jnp.zeros((2, 2, 4)), proposals, jnp.asarray([True, True]), jnp.asarray([64, 64]),
      score_threshold=0.05, nms_threshold=0.5, cfg=cfg, box_weights=(10.0, 10.0, 5.0, 5.0))
  assert int(valid.sum()) == survivors
  best = np.exp(5) / (np.exp(5) + 2)
  np.testing.assert_allclose(scores[0], best, rtol=1e-6)
  np.testing.assert_allclose(boxes[0], [0, 0, 10, 10], atol=1e-5)
  if survivors == 2:
    np.testing.assert_array_equal(classes[:2], [1, 2])
    np.testing.assert_allclose(boxes[1], [1, 0, 11, 10], atol=1e-5)


@pytest.mark.parametrize("min_box_size, survivors", [(0.0, 2), (1e-2, 1)])
def test_detect_boxes_drops_boxes_under_min_box_size(min_box_size, survivors):
  """A proposal beyond the image's right edge clips to width 0: kept by default, dropped by torchvision's 1e-2."""
  proposals = jnp.asarray([[0, 0, 10, 10], [70, 0, 80, 10]], jnp.float32)
  logits = jnp.zeros((2, 2)).at[:, 1].set(5.0)
  cfg = ConfigDict(dict(candidates_per_image=10, detections_per_image=5, min_box_size=min_box_size))
  boxes, _, _, valid = detect_boxes(
      logits, jnp.zeros((2, 1, 4)), proposals, jnp.asarray([True, True]), jnp.asarray([64, 64]),
      score_threshold=0.05, nms_threshold=0.5, cfg=cfg, box_weights=(10.0, 10.0, 5.0, 5.0))
  assert int(valid.sum()) == survivors
  np.testing.assert_allclose(boxes[0], [0, 0, 10, 10], atol=1e-5)


def _mask_case(channels):
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(3, 4, 4, channels)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 2, (3, 4, 4)), jnp.float32)
  return logits, targets, jnp.asarray([2, 3, 1]), jnp.asarray([True, True, False])


def test_sigmoid_mask_loss_trains_only_the_ground_truth_class_channel():
  logits, targets, classes, valid = _mask_case(channels=3)
  grad = np.asarray(jax.grad(lambda x: mask_loss(x, targets, classes, valid, "sigmoid"))(logits))
  for roi, cls in enumerate([2, 3]):
    for channel in range(3):
      trained = channel == cls - 1
      assert np.any(grad[roi, ..., channel] != 0) == trained, (roi, channel)
      if not trained:
        assert np.all(grad[roi, ..., channel] == 0.0)  # exactly zero: classes do not compete
  assert np.all(grad[2] == 0.0)  # the invalid RoI


def test_softmax_mask_loss_couples_every_class_channel():
  logits, targets, classes, valid = _mask_case(channels=4)  # background + 3 classes
  grad = np.asarray(jax.grad(lambda x: mask_loss(x, targets, classes, valid, "softmax"))(logits))
  for roi in (0, 1):
    assert all(np.any(grad[roi, ..., c] != 0) for c in range(4)), roi
  assert np.all(grad[2] == 0.0)


def test_mask_loss_value_and_probabilities():
  logits = jnp.zeros((1, 2, 2, 3)).at[0, ..., 1].set(jnp.asarray([[2.0, -2.0], [0.0, 0.0]]))
  targets = jnp.asarray([[[1.0, 0.0], [1.0, 0.0]]])
  loss = mask_loss(logits, targets, jnp.asarray([2]), jnp.asarray([True]), "sigmoid")
  np.testing.assert_allclose(loss, (2 * softplus(-2.0) + 2 * np.log(2.0)) / 4, rtol=1e-6)
  probs = mask_probabilities(logits, jnp.asarray([2]), "sigmoid")
  np.testing.assert_allclose(probs[0], jax.nn.sigmoid(jnp.asarray([[2.0, -2.0], [0.0, 0.0]])), rtol=1e-6)
  agnostic = mask_probabilities(jnp.full((1, 2, 2, 1), 3.0), jnp.asarray([2]), "sigmoid")
  np.testing.assert_allclose(agnostic, jax.nn.sigmoid(3.0), rtol=1e-6)
  softmax = mask_probabilities(jnp.zeros((1, 2, 2, 4)).at[..., 2].set(np.log(2.0)), jnp.asarray([2]), "softmax")
  np.testing.assert_allclose(softmax, 2 / 5, rtol=1e-6)  # class 2's share of background + 3 classes


def test_deconv_equals_a_transposed_convolution_with_the_same_weights():
  deconv = Deconv2x(3, 5, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  kernel, bias = deconv.kernel[...], deconv.bias[...]

  def reference(x, kernel):  # lax.conv_transpose correlates the dilated input: flip to scatter the kernel
    return jax.lax.conv_transpose(x, kernel[::-1, ::-1], (2, 2), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  np.testing.assert_allclose(deconv(x), reference(x, kernel), atol=1e-5)
  # One input pixel writes its own 2x2 block: out[2i + a, 2j + b] = x[i, j] @ kernel[a, b].
  one = jnp.zeros((1, 4, 4, 3)).at[0, 1, 2].set(jnp.asarray([1.0, 0.0, 0.0]))
  np.testing.assert_allclose(deconv(one)[0, 2:4, 4:6] - bias, kernel[:, :, 0], atol=1e-6)
  ours = nnx.grad(lambda module: (module(x) ** 2).sum())(deconv)["kernel"][...]
  theirs = jax.grad(lambda k: (reference(x, k) ** 2).sum())(kernel)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
