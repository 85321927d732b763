"""Anchor boxes on feature-map grids (Detectron2's DefaultAnchorGenerator with offset 0).

A feature map of stride s has Hl = ceil(height / s) rows and Wl = ceil(width / s) columns. Cell
(y, x) carries anchors centred at (x * s, y * s). For each (size, ratio) the anchor has area
size**2 and aspect ratio h / w = ratio: w = size / sqrt(ratio), h = size * sqrt(ratio).

Ordering: anchors are listed (y, x, a) row-major, so they line up with a head's conv output
[Hl, Wl, A] reshaped to [Hl * Wl * A]. Within a cell, a = size_index * len(ratios) + ratio_index.
With ``rounded`` the cell anchors' corners are rounded to integers (half to even) before they are
shifted, as torchvision's AnchorGenerator does: (-22.63, -11.31, 22.63, 11.31) becomes (-23, -11, 23, 11).
Everything here depends only on static Python numbers, so the results are NumPy float32 arrays:
no device work, and they enter any jitted function as constants.
"""

import math

import numpy as np


def _cell_anchors(sizes, ratios, rounded=False):
  """Anchors [len(sizes) * len(ratios), 4] centred at the origin, sizes outer, ratios inner (corners
  rounded to integers when ``rounded``)."""
  cells = []
  for size in sizes:
    for ratio in ratios:
      w = size / math.sqrt(ratio)
      h = size * math.sqrt(ratio)
      cells.append((-w / 2, -h / 2, w / 2, h / 2))
  cells = np.asarray(cells, np.float64)
  return np.round(cells) if rounded else cells


def _grid_anchors(height, width, stride, cells):
  """Shifts cells [A, 4] to every cell of a ceil(height/stride) x ceil(width/stride) grid."""
  rows = -(-height // stride)
  cols = -(-width // stride)
  ys, xs = np.meshgrid(np.arange(rows) * stride, np.arange(cols) * stride, indexing="ij")
  shifts = np.stack([xs, ys, xs, ys], axis=-1).reshape(-1, 1, 4)
  return (shifts + cells[None]).reshape(-1, 4).astype(np.float32)


def _check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive Python int (static), got {value!r}")


def _check_positive_numbers(name, values):
  values = tuple(values)
  if not values or any(isinstance(v, bool) or not v > 0 for v in values):
    raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
  return values


def fpn_anchors(height, width, strides=(4, 8, 16, 32, 64), sizes=(32, 64, 128, 256, 512),
                ratios=(0.5, 1.0, 2.0), rounded=False):
  """Anchors for an FPN pyramid: one size per level.

  Args:
    height, width: canvas size in pixels (static ints).
    strides: stride of each level (P2..P6 by default).
    sizes: one anchor size per level (same length as strides).
    ratios: aspect ratios h / w, shared by all levels.
    rounded: cell anchors rounded to integers (torchvision's).
  Returns:
    list over levels of float32 [ceil(height/s) * ceil(width/s) * len(ratios), 4].
  """
  _check_positive_int("height", height)
  _check_positive_int("width", width)
  strides = _check_positive_numbers("strides", strides)
  sizes = _check_positive_numbers("sizes", sizes)
  ratios = _check_positive_numbers("ratios", ratios)
  for stride in strides:
    _check_positive_int("strides", stride)
  if len(sizes) != len(strides):
    raise ValueError(f"sizes must give one size per level: {len(sizes)} sizes for {len(strides)} strides")
  return [_grid_anchors(height, width, s, _cell_anchors((size,), ratios, rounded))
          for s, size in zip(strides, sizes)]


def c4_anchors(height, width, stride=16, sizes=(32, 64, 128, 256, 512), ratios=(0.5, 1.0, 2.0),
               rounded=False):
  """Anchors for a single (C4) feature map: every size x ratio at every cell (``rounded`` as in
  fpn_anchors).

  Returns:
    float32 [ceil(height/stride) * ceil(width/stride) * len(sizes) * len(ratios), 4].
  """
  _check_positive_int("height", height)
  _check_positive_int("width", width)
  _check_positive_int("stride", stride)
  sizes = _check_positive_numbers("sizes", sizes)
  ratios = _check_positive_numbers("ratios", ratios)
  return _grid_anchors(height, width, stride, _cell_anchors(sizes, ratios, rounded))
