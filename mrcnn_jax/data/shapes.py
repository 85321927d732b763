"""Synthetic instance-segmentation scenes: coloured shapes on textured backgrounds.

Pure numpy + PIL (no TensorFlow): `render_scene(rng, size)` draws 1..max_shapes circles, squares,
triangles and thin bars of random colour, size (small objects included), rotation and position on a
noise / gradient / stripes background. Later shapes occlude earlier ones: earlier masks lose the
covered pixels, and instances left with fewer than `min_visible` of their drawn pixels (or fewer than
`min_pixels` pixels) are dropped. Masks are exact: a pixel is painted with a shape's colour iff it is
in that shape's mask, so boxes computed from masks are pixel-accurate.
"""

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle", "bar")


def background(rng: np.random.Generator, size: int) -> np.ndarray:
  """[size, size, 3] float32 texture: per-pixel noise, a linear gradient, or oriented stripes."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
  kind = rng.integers(3)
  if kind == 0:
    return c0 + rng.normal(0.0, rng.uniform(5, 25), (size, size, 3)).astype(np.float32)
  theta = rng.uniform(0, np.pi)
  proj = xx * np.cos(theta) + yy * np.sin(theta)
  if kind == 1:
    t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
  else:
    t = (np.floor(proj / rng.uniform(4, 16)) % 2).astype(np.float32)
  return c0 + t[..., None] * (c1 - c0)


def _regular_polygon(center, radius, angle, n):
  """Vertices of a regular n-gon with circumradius `radius`, rotated by `angle` (radians)."""
  phis = angle + 2 * np.pi * (np.arange(n) + 0.5) / n
  return list(zip((center[0] + radius * np.cos(phis)).tolist(),
                  (center[1] + radius * np.sin(phis)).tolist()))


def _bar(center, length, width, angle):
  """Corners of a length x width rectangle centred at `center`, long axis at `angle`."""
  u = np.array([np.cos(angle), np.sin(angle)]) * length / 2
  v = np.array([-np.sin(angle), np.cos(angle)]) * width / 2
  return [tuple((center + su * u + sv * v).tolist()) for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1))]


def shape_mask(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
  """Draws one shape of class `label` (index into CLASS_NAMES) as a [size, size] bool mask."""
  extent = np.exp(rng.uniform(np.log(max(6.0, 0.05 * size)), np.log(0.5 * size)))
  center = rng.uniform(0, size, 2)
  angle = rng.uniform(0, 2 * np.pi)
  canvas = Image.new("1", (size, size), 0)
  draw = ImageDraw.Draw(canvas)
  r = extent / 2
  if CLASS_NAMES[label] == "circle":
    draw.ellipse([center[0] - r, center[1] - r, center[0] + r, center[1] + r], fill=1)
  elif CLASS_NAMES[label] == "square":
    draw.polygon(_regular_polygon(center, r * np.sqrt(2), angle, 4), fill=1)
  elif CLASS_NAMES[label] == "triangle":
    draw.polygon(_regular_polygon(center, r * 1.2, angle, 3), fill=1)
  else:  # bar: 2..4 px wide, 0.2..0.8 image sides long
    draw.polygon(_bar(center, rng.uniform(0.2, 0.8) * size, float(rng.integers(2, 5)), angle), fill=1)
  return np.asarray(canvas, dtype=bool)


def paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
  """Paints ``mask`` of ``image`` (float32, in place) in a random colour distinguishable from what
  it is painted on."""
  under = image[mask].mean(axis=0)
  colour = rng.uniform(0, 255, 3)
  for _ in range(8):
    if np.abs(colour - under).sum() >= 90:
      break
    colour = rng.uniform(0, 255, 3)
  image[mask] = colour


def render_scene(rng: np.random.Generator, size: int, max_shapes: int = 6,
                 min_visible: float = 0.2, min_pixels: int = 6):
  """Renders one scene.

  Returns:
    image [size, size, 3] uint8, masks [N, size, size] bool (visible pixels, N >= 0),
    labels [N] int64 in 0..3 (index into CLASS_NAMES), and the number of drawn shapes dropped as
    (nearly) hidden or tiny. Instances are in paint order (back to front).
  """
  image = background(rng, size)
  masks, labels, drawn = [], [], []
  for _ in range(int(rng.integers(1, max_shapes + 1))):
    label = int(rng.integers(len(CLASS_NAMES)))
    mask = shape_mask(rng, label, size)
    if not mask.any():
      continue
    paint(rng, image, mask)
    masks = [m & ~mask for m in masks]
    masks.append(mask)
    labels.append(label)
    drawn.append(int(mask.sum()))
  image = image + rng.normal(0.0, 3.0, image.shape)
  keep = [i for i, m in enumerate(masks)
          if m.sum() >= max(min_pixels, min_visible * drawn[i])]
  out_masks = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, size, size), bool)
  return (np.clip(np.rint(image), 0, 255).astype(np.uint8), out_masks,
          np.asarray([labels[i] for i in keep], np.int64), len(masks) - len(keep))


def mask_box(mask: np.ndarray) -> np.ndarray:
  """Tight pixel box (x1, y1, x2, y2) of a non-empty [H, W] mask, x2/y2 exclusive (float32)."""
  ys = np.flatnonzero(mask.any(axis=1))
  xs = np.flatnonzero(mask.any(axis=0))
  return np.asarray([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float32)
