"""Keypoint targets (Detectron2's keypoints_to_heatmap, edge cases worked by hand) and the static decode
against a full, dynamic numpy version of Detectron2's heatmaps_to_keypoints (PyTorch's bicubic resize to
the box's size, then the argmax)."""

import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax.ops.keypoints import cubic_weights, heatmaps_to_keypoints, keypoint_targets


def test_targets_edges_visibility_and_outside_on_hand_worked_cases():
  roi = jnp.asarray([[10.0, 20.0, 38.0, 48.0]])  # 28 x 28 px on a 4 x 4 map: 7 px per cell
  keypoints = jnp.asarray([[
      [10.0, 20.0, 2],    # top-left corner: cell (0, 0)
      [38.0, 48.0, 2],    # right / bottom edge: the last cell (3, 3), not 4
      [37.9, 26.9, 1],    # labelled but invisible (v = 1) still trains: x cell 3, y cell 0
      [24.0, 27.0, 0],    # not labelled: ignored
      [9.99, 30.0, 2],    # left of the RoI: ignored
      [20.0, 48.01, 2],   # below the bottom edge: ignored
  ]])
  labels, valid = keypoint_targets(keypoints, roi, 4)
  np.testing.assert_array_equal(valid, [[True, True, True, False, False, False]])
  np.testing.assert_array_equal(labels, [[0, 15, 3, 0, 0, 0]])


def torch_bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in]: PyTorch's bicubic resize of one axis (align_corners=False, float32 source index)."""
  scale = np.float32(n_in) / np.float32(n_out)
  u = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
  index = np.minimum(np.floor(u), n_in - 1).astype(int)
  weights = cubic_weights(np.clip(u - index, 0, 1).astype(np.float64), np)
  matrix = np.zeros((n_out, n_in))
  for tap in range(4):
    np.add.at(matrix, (np.arange(n_out), np.clip(index + tap - 1, 0, n_in - 1)), weights[:, tap])
  return matrix


def reference_decode(logits: np.ndarray, box: np.ndarray) -> np.ndarray:
  """Detectron2's heatmaps_to_keypoints for one RoI, dynamically: logits [S,S,K], box [4] -> [K,3]."""
  w, h = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
  width, height = int(np.ceil(w)), int(np.ceil(h))
  size = logits.shape[0]
  out = []
  for k in range(logits.shape[-1]):
    resized = torch_bicubic_matrix(size, height) @ logits[..., k] @ torch_bicubic_matrix(size, width).T
    y, x = divmod(int(np.argmax(resized)), width)
    score = np.exp(resized.max() - logits[..., k].max()) / np.exp(logits[..., k] - logits[..., k].max()).sum()
    out.append([(x + 0.5) * w / width + box[0], (y + 0.5) * h / height + box[1], score])
  return np.asarray(out)


def test_decode_finds_a_maximum_between_cells_far_from_the_maps_largest_cell():
  # Two adjacent cells of 1 (row 10, columns 20 and 21) overshoot to 1.1875 midway; a lone 1.1 at
  # (30, 40) is the largest cell but its interpolant never exceeds 1.1.
  logits = np.zeros((56, 56, 1), np.float32)
  logits[10, 20:22, 0] = 1.0
  logits[30, 40, 0] = 1.1
  # A 12 x 8 px box: output column 4 samples source x = 20.5, output row 1 samples y = 10 exactly.
  box = np.asarray([[100.0, 50.0, 112.0, 58.0]], np.float32)
  got = np.asarray(heatmaps_to_keypoints(jnp.asarray(logits[None]), jnp.asarray(box), max_side=64))[0, 0]
  score = np.exp(1.1875) / (np.exp(1.0) * 2 + np.exp(1.1) + 56 * 56 - 3)
  np.testing.assert_allclose(got, [100 + 4.5, 50 + 1.5, score], rtol=1e-5)
  np.testing.assert_allclose(got, reference_decode(logits, box[0])[0], rtol=1e-5)
  logit = heatmaps_to_keypoints(jnp.asarray(logits[None]), jnp.asarray(box), max_side=64, score="logit")
  np.testing.assert_allclose(logit[0, 0], [104.5, 51.5, 1.1875], rtol=1e-5)  # torchvision's score: the value


def random_heatmaps(rng, n, k):
  """Maps like the head's: a random 28 x 28 field, smoothed and bilinearly doubled, peaks of several logits."""
  coarse = rng.normal(size=(n, 28, 28, k)).astype(np.float32)
  coarse = (coarse + np.roll(coarse, 1, 1) + np.roll(coarse, 1, 2)) * rng.uniform(1, 4, (n, 1, 1, k))
  return np.asarray(jnp.repeat(jnp.repeat(jnp.asarray(coarse), 2, 1), 2, 2)
                    + 0.3 * rng.normal(size=(n, 56, 56, k)).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1])
def test_decode_matches_the_dynamic_reference_on_random_maps_and_box_sizes(seed):
  rng = np.random.default_rng(seed)
  n, k, max_side = 24, 6, 300
  logits = random_heatmaps(rng, n, k)
  if seed == 1:  # plateaus: ties and maxima between cells everywhere
    logits = np.round(logits)
  sizes = np.concatenate([rng.uniform(0.3, 56, (n // 2, 2)), rng.uniform(56, max_side, (n - n // 2, 2))])
  corner = rng.uniform(0, 200, (n, 2))
  boxes = np.concatenate([corner, corner + sizes], axis=1).astype(np.float32)
  got = np.asarray(heatmaps_to_keypoints(jnp.asarray(logits), jnp.asarray(boxes), max_side=max_side))
  want = np.stack([reference_decode(logits[i], boxes[i]) for i in range(n)])
  np.testing.assert_allclose(got[..., :2], want[..., :2], atol=1e-3)
  np.testing.assert_allclose(got[..., 2], want[..., 2], rtol=1e-4)
