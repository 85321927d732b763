"""Keypoint metadata and geometry: names, skeleton, the horizontal flip map, OKS sigmas.

An instance's keypoints are [K, 3] float32: x, y in pixels as continuous coordinates (pixel i spans
[i, i + 1): COCO's integer pixel indices + 0.5, as Detectron2 reads them) and v in {0: not labelled,
1: labelled but not visible, 2: visible}; unlabelled keypoints are (0, 0, 0). A dataset with
keypoints keeps in its metadata (``dataset_metadata``):
  keypoint_names     [K] str
  keypoint_skeleton  [[i, j], ...] 0-based pairs joined when drawn (COCO's `skeleton` is 1-based)
  keypoint_flip_map  [[i, j], ...] pairs a horizontal flip swaps: every left_X with its right_X
  keypoint_sigmas    [K] OKS sigmas (pycocotools' for COCO's 17 person keypoints)
"""

import numpy as np

from mrcnn_jax.data.coco_classes import COCO_KEYPOINT_NAMES, COCO_KEYPOINT_SIGMAS

# Other keypoint sets without sigmas of their own: about COCO's mean (elbows, knees).
DEFAULT_SIGMA = 0.07


def flip_map(names) -> tuple[tuple[int, int], ...]:
  """Index pairs (i, j) of every "left_X" (i) and "right_X" (j) among ``names``."""
  index = {name: i for i, name in enumerate(names)}
  return tuple((i, index["right_" + name[len("left_"):]]) for i, name in enumerate(names)
               if name.startswith("left_") and "right_" + name[len("left_"):] in index)


def default_sigmas(names) -> tuple[float, ...]:
  """COCO's person sigmas for COCO's 17 names, else DEFAULT_SIGMA for each keypoint."""
  return COCO_KEYPOINT_SIGMAS if tuple(names) == COCO_KEYPOINT_NAMES else (DEFAULT_SIGMA,) * len(names)


def dataset_metadata(names, skeleton=(), sigmas=None) -> dict:
  """The metadata entries above for keypoint ``names`` (sigmas: ``default_sigmas`` when None)."""
  return {"keypoint_names": list(names), "keypoint_skeleton": [list(map(int, p)) for p in skeleton],
          "keypoint_flip_map": [list(p) for p in flip_map(names)],
          "keypoint_sigmas": [float(s) for s in (default_sigmas(names) if sigmas is None else sigmas)]}


def hflip(keypoints: np.ndarray, width: float, pairs) -> np.ndarray:
  """[..., K, 3] keypoints mirrored in an image ``width`` wide: x -> width - x for labelled ones,
  each (i, j) of ``pairs`` swapped (a left wrist becomes the mirrored person's right wrist)."""
  out = np.array(keypoints, np.float32)
  labelled = out[..., 2] > 0
  out[..., 0] = np.where(labelled, width - out[..., 0], 0.0)
  for i, j in pairs:
    out[..., [i, j], :] = out[..., [j, i], :]
  return out


def resize(keypoints: np.ndarray, original_size, height: int, width: int) -> np.ndarray:
  """[..., K, 3] keypoints of an image of ``original_size`` (H, W) scaled per axis into the resized
  image, height x width (a keypoint on the right edge stays on it); those that land outside
  [0, width] x [0, height] become unlabelled (0, 0, 0), as in Detectron2's transforms."""
  out = np.array(keypoints, np.float32)
  out[..., :2] *= np.asarray([width / original_size[1], height / original_size[0]], np.float32)
  inside = ((out[..., 0] >= 0) & (out[..., 0] <= width) & (out[..., 1] >= 0) & (out[..., 1] <= height))
  out[~(inside & (out[..., 2] > 0))] = 0.0
  return out
