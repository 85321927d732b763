"""Keypoint heatmaps: training targets (keypoint -> cell of an RoI's S x S map) and the inference decode
(map -> keypoint), Detectron2's ``keypoints_to_heatmap`` and ``heatmaps_to_keypoints`` in static shapes.

Coordinates are continuous (a pixel's centre at +0.5, Heckbert's convention as Detectron2's): a keypoint
at x lies in cell floor((x - x1) * S / (x2 - x1)) of its RoI, one on the RoI's right or bottom edge in
the last cell.

The decode resizes each S x S logit map bicubically (PyTorch's ``F.interpolate(mode="bicubic",
align_corners=False)``, A = -0.75, taps clamped at the border) to the box's size in pixels, ceil(w) x
ceil(h), and takes the first maximum in row-major order: output pixel o samples the map at source
coordinate u = (o + 0.5) * S / ceil(w) - 0.5. That size is dynamic; the static formulation here groups
output pixels by the source *cell* they fall in (floor(u), -1..S-1 per axis: S + 1 cells, each an
interpolant of one 4 x 4 neighbourhood of the map), bounds the interpolant over each cell from above by
its Bernstein coefficients (a polynomial on [0,1]^2 lies below its largest Bernstein coefficient), and
evaluates the output pixels of the cells in decreasing order of their bounds, a few cells per step of a
``while_loop``, until the next bound is below the best value found: the argmax is then Detectron2's
(up to float rounding), usually after one or two steps. Each step costs a fixed number of cells of at
most ceil(max_side / S) + 2 pixels per axis.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

A = -0.75  # PyTorch's bicubic constant


def keypoint_targets(keypoints, rois, size: int):
  """Training targets of keypoints [N,K,3] (x, y, v) in rois [N,4] on size x size maps.

  Returns (labels [N,K] int32: the cell's flat index y * size + x, 0 where invalid; valid [N,K] bool:
  labelled (v > 0) and inside the RoI).
  """
  x1, y1, x2, y2 = (rois[:, None, i] for i in range(4))
  x, y = keypoints[..., 0], keypoints[..., 1]
  cx = jnp.where(x == x2, size - 1, jnp.floor((x - x1) * (size / (x2 - x1))))
  cy = jnp.where(y == y2, size - 1, jnp.floor((y - y1) * (size / (y2 - y1))))
  valid = (cx >= 0) & (cy >= 0) & (cx < size) & (cy < size) & (keypoints[..., 2] > 0)
  labels = jnp.where(valid, cy * size + cx, 0).astype(jnp.int32)
  return labels, valid


def cubic_weights(t, xp=jnp):
  """PyTorch's 4 bicubic tap weights [...,4] for fractions t [...] (taps at floor(u) - 1 .. + 2)."""
  near = lambda s: ((A + 2) * s - (A + 3)) * s * s + 1       # |distance| <= 1
  far = lambda s: ((A * s - 5 * A) * s + 8 * A) * s - 4 * A  # 1 < |distance| < 2
  return xp.stack([far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)], axis=-1)


def _bernstein_matrix() -> np.ndarray:
  """[4 taps, 4]: the cubic Bernstein coefficients of each tap's weight polynomial on t in [0,1]."""
  t = np.linspace(0.0, 1.0, 4)
  basis = np.stack([math.comb(3, b) * t ** b * (1 - t) ** (3 - b) for b in range(4)], axis=1)
  return np.linalg.solve(basis, cubic_weights(t, np)).T  # weights(t_i) = basis(t_i) @ coefficients


def _source(o, size: int, out_len):
  """Output pixels o [...] int32 of a size-cell axis resized to out_len pixels -> (cell floor(u), t)."""
  scale = jnp.float32(size) / out_len.astype(jnp.float32)
  u = scale * (o.astype(jnp.float32) + jnp.float32(0.5)) - jnp.float32(0.5)
  cell = jnp.minimum(jnp.floor(u), size - 1)
  return cell.astype(jnp.int32), jnp.clip(u - cell, 0.0, 1.0)


def _cell_pixels(cells, size: int, out_len, per_cell: int):
  """Cells [C] along an axis (index c: source cell c - 1) of a map of ``size`` resized to out_len pixels
  -> (output pixels [C,P], whether each lies in its cell [C,P], tap weights [C,P,4]); P = per_cell
  candidates from one before the cell's first pixel (a cell holds at most ceil(out_len / size))."""
  start = jnp.ceil((cells - 0.5) * out_len / size - 0.5).astype(jnp.int32) - 1
  o = jnp.maximum(start, 0)[:, None] + jnp.arange(per_cell)
  cell, t = _source(o, size, out_len)
  return o, (cell == cells[:, None] - 1) & (o < out_len), cubic_weights(t)


def _decode_one(logits, box, max_side: int, chunk: int, score: str):
  """One map [S,S] and its box [4] -> (x, y, score) as Detectron2's ``heatmaps_to_keypoints``.

  Cells are visited in decreasing order of their bounds, ``chunk`` at a time, until the next bound is
  below the best value found (ties: the first pixel in row-major order, as torch.argmax)."""
  size = logits.shape[0]
  extent = jnp.maximum(box[2:] - box[:2], 1.0)   # (w, h)
  out_len = jnp.ceil(extent)                     # the resized map's (width, height)
  width = out_len[0].astype(jnp.int32)
  taps = jnp.clip(jnp.arange(-1, size)[:, None] + jnp.arange(-1, 3)[None], 0, size - 1)  # [S+1,4]
  hood = logits[taps[:, None, :, None], taps[None, :, None, :]]  # [S+1 (y cell),S+1 (x cell),4,4]
  beta = jnp.asarray(_BERNSTEIN, jnp.float32)
  bound = jnp.einsum("ab,yxac,cd->yxbd", beta, hood, beta).max(axis=(2, 3))
  per_cell = -(-max_side // size) + 2
  every = jnp.arange(size + 1)
  occupied_y, occupied_x = (_cell_pixels(every, size, n, per_cell)[1].any(axis=1) for n in out_len[::-1])
  bound = jnp.where(occupied_y[:, None] & occupied_x[None], bound, -jnp.inf).reshape(-1)
  order = jnp.argsort(-bound)
  order = jnp.pad(order, (0, -len(order) % chunk))
  bound = jnp.pad(bound[order[:bound.shape[0]]], (0, len(order) - bound.shape[0]), constant_values=-jnp.inf)

  def visit(state):
    """The next ``chunk`` cells' pixels evaluated -> the best (value, row-major index) so far."""
    i, top, flat = state
    cells = jax.lax.dynamic_slice_in_dim(order, i * chunk, chunk)
    cy, cx = cells // (size + 1), cells % (size + 1)
    oy, in_y, wy = _cell_pixels(cy, size, out_len[1], per_cell)
    ox, in_x, wx = _cell_pixels(cx, size, out_len[0], per_cell)
    values = jnp.einsum("cpa,cab,cqb->cpq", wy, hood[cy, cx], wx)
    values = jnp.where(in_y[:, :, None] & in_x[:, None, :], values, -jnp.inf)
    indices = jnp.broadcast_to(oy[:, :, None] * width + ox[:, None, :], values.shape)
    values, indices = jnp.append(values, top), jnp.append(indices, flat)
    top = values.max()
    return i + 1, top, jnp.where(values == top, indices, jnp.iinfo(jnp.int32).max).min()

  def unseen_may_win(state):
    i, top, _ = state
    return (i * chunk < len(order)) & (bound[jnp.minimum(i * chunk, len(order) - 1)] >= top)

  _, top, flat = jax.lax.while_loop(unseen_may_win, visit, (0, -jnp.inf, jnp.iinfo(jnp.int32).max))
  xy = (jnp.stack([flat % width, flat // width]).astype(jnp.float32) + 0.5) * (extent / out_len) + box[:2]
  return jnp.stack([xy[0], xy[1], jnp.exp(top - jax.nn.logsumexp(logits)) if score == "detectron2" else top])


@functools.partial(jax.jit, static_argnames=("max_side", "chunk", "score"))
def heatmaps_to_keypoints(logits, boxes, max_side: int, chunk: int = 8, score: str = "detectron2"):
  """Keypoints of heatmap logits [N,S,S,K] in boxes [N,4] (canvas pixels, sides at most ``max_side``).

  Returns [N,K,3]: x, y (canvas pixels) and the score: "detectron2", the resized map's maximum
  normalised by the S x S map's softmax denominator (exp(max) / sum(exp(logits)): it can exceed 1), or
  "logit", that maximum itself (torchvision's keypoints_scores). ``chunk``: cells evaluated per step of
  the search.
  """
  if score not in ("detectron2", "logit"):
    raise ValueError(f"score must be 'detectron2' or 'logit', got {score!r}")
  per_map = jax.vmap(functools.partial(_decode_one, max_side=max_side, chunk=chunk, score=score), (0, None))
  return jax.vmap(per_map)(jnp.moveaxis(logits, -1, 1), boxes)


_BERNSTEIN = _bernstein_matrix()
