"""Synthetic keypoint scenes: articulated stick figures with 11 named keypoints.

Pure numpy + PIL (no TensorFlow), like shapes.py: `render_scene(rng, size)` draws 1..max_figures
figures (a head disc, a torso, two two-segment arms and legs of random pose, 0.25..0.7 image sides
tall, tilted up to 30 degrees, one random colour each) on shapes.py's backgrounds, then 0..2 of
shapes.py's shapes as occluders (not instances). Later paint covers earlier paint: masks lose the
covered pixels, and a keypoint whose pixel another figure or an occluder covers is labelled but not
visible (v = 1); keypoints outside the image are unlabelled (0, 0, 0); the rest are visible (v = 2).
Figures left with fewer than `min_visible` of their drawn pixels are dropped.

Left and right are the figure's own, seen from the front: upright, its left limbs are on the
image's right. A horizontal flip turns a figure into its mirror image, whose left limbs are the
original's right ones: the flip map swaps left_X and right_X (``keypoints.flip_map``).
"""

import numpy as np
from PIL import Image, ImageDraw

from mrcnn_jax.data import shapes

KEYPOINT_NAMES = ("head", "neck", "left_elbow", "right_elbow", "left_hand", "right_hand", "hip",
                  "left_knee", "right_knee", "left_foot", "right_foot")
SKELETON = ((0, 1), (1, 2), (2, 4), (1, 3), (3, 5), (1, 6), (6, 7), (7, 9), (6, 8), (8, 10))
# OKS sigmas: COCO's for the nearest body part (head: between nose 0.026 and ears 0.035, wider as the
# disc's centre is less sharp than a nose; neck: shoulders; hip: hips; the rest by name).
SIGMAS = (0.05, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.087, 0.087, 0.089, 0.089)
CLASS_NAMES = ("figure",)


def _pose(rng: np.random.Generator) -> np.ndarray:
  """[11, 2] keypoints of an upright figure of height 1 (y down, head top at y = -0.5), centred at 0.

  Limb angles are from straight down, in [0, 170] degrees: the left limbs swing to +x (the image's
  right), the right ones to -x, so no hand, knee or foot crosses the body's axis.
  """
  head, neck, hip = np.array([0.0, -0.41]), np.array([0.0, -0.3]), np.array([0.0, 0.06])
  points = {"head": head, "neck": neck, "hip": hip}
  for side, sign in (("left", 1.0), ("right", -1.0)):
    upper = np.radians(rng.uniform(15, 150))
    fore = np.clip(upper + np.radians(rng.uniform(-20, 90)), 0, np.radians(170))
    elbow = neck + 0.18 * np.array([sign * np.sin(upper), np.cos(upper)])
    points[f"{side}_elbow"] = elbow
    points[f"{side}_hand"] = elbow + 0.16 * np.array([sign * np.sin(fore), np.cos(fore)])
    thigh = np.radians(rng.uniform(3, 40))
    shin = max(thigh + np.radians(rng.uniform(-30, 20)), 0.0)
    knee = hip + 0.22 * np.array([sign * np.sin(thigh), np.cos(thigh)])
    points[f"{side}_knee"] = knee
    points[f"{side}_foot"] = knee + 0.22 * np.array([sign * np.sin(shin), np.cos(shin)])
  return np.stack([points[name] for name in KEYPOINT_NAMES])


def _figure(rng: np.random.Generator, size: int):
  """One figure: ([size, size] bool mask of its drawn pixels, [11, 2] keypoints in pixels)."""
  height = size * np.exp(rng.uniform(np.log(0.25), np.log(0.7)))
  angle = np.radians(rng.uniform(-30, 30))
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  points = _pose(rng) @ rotation.T * height + rng.uniform(0.1 * size, 0.9 * size, 2)
  canvas = Image.new("1", (size, size), 0)
  draw = ImageDraw.Draw(canvas)
  limb = max(2.0, 0.06 * height)
  for i, j in SKELETON[1:]:
    width = 1.6 * limb if (i, j) == (1, 6) else limb  # the torso is broader
    draw.line([tuple(points[i]), tuple(points[j])], fill=1, width=int(round(width)))
  for p in points[1:]:  # round joints
    draw.ellipse([p[0] - limb / 2, p[1] - limb / 2, p[0] + limb / 2, p[1] + limb / 2], fill=1)
  r = 0.1 * height
  draw.ellipse([points[0][0] - r, points[0][1] - r, points[0][0] + r, points[0][1] + r], fill=1)
  return np.asarray(canvas, dtype=bool), points


def render_scene(rng: np.random.Generator, size: int, max_figures: int = 4, max_occluders: int = 2,
                 min_visible: float = 0.2):
  """Renders one scene.

  Returns:
    image [size, size, 3] uint8, masks [N, size, size] bool (visible pixels), keypoints [N, 11, 3]
    float32 (x, y in continuous pixel coordinates, v; see the module doc), and the number of
    figures dropped as (nearly) hidden. Instances are in paint order (back to front).
  """
  image = shapes.background(rng, size)
  masks, full, points = [], [], []
  for _ in range(int(rng.integers(1, max_figures + 1))):
    mask, xy = _figure(rng, size)
    if not mask.any():
      continue
    shapes.paint(rng, image, mask)
    masks = [m & ~mask for m in masks]
    masks.append(mask)
    full.append(mask)
    points.append(xy)
  for _ in range(int(rng.integers(0, max_occluders + 1))):
    occluder = shapes.shape_mask(rng, int(rng.integers(3)), size)
    if occluder.any():
      shapes.paint(rng, image, occluder)
      masks = [m & ~occluder for m in masks]
  image = image + rng.normal(0.0, 3.0, image.shape)
  keep = [i for i, m in enumerate(masks) if m.sum() >= max(6, min_visible * full[i].sum())]
  out_masks = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, size, size), bool)
  keypoints = np.zeros((len(keep), len(KEYPOINT_NAMES), 3), np.float32)
  for n, i in enumerate(keep):
    xy = points[i]
    inside = (xy >= 0).all(axis=1) & (xy < size).all(axis=1)
    cells = np.clip(np.floor(xy).astype(int), 0, size - 1)
    covered = full[i][cells[:, 1], cells[:, 0]] & ~masks[i][cells[:, 1], cells[:, 0]]
    keypoints[n, :, :2] = np.where(inside[:, None], xy, 0.0)
    keypoints[n, :, 2] = np.where(inside, np.where(covered, 1, 2), 0)
  return (np.clip(np.rint(image), 0, 255).astype(np.uint8), out_masks, keypoints, len(masks) - len(keep))
