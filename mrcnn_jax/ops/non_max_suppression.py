"""Greedy non-maximum suppression with static output size, in tiles so that N can be large.

Algorithm: sort by score (descending, ties by input index), then walk the sorted boxes in tiles
of `tile_size`. For each tile, boxes overlapping an already kept box (IoU > threshold) die; then
the survivors suppress each other inside the tile by a fixed-point iteration on the tile's
[T, T] IoU matrix (box i lives iff no living box j < i in the tile overlaps it; the iteration
fixes one more position per step, and usually converges in a few). Kept boxes are appended to
a buffer of max_output slots that later tiles are checked against chunk by chunk, only as far
as it is filled. Memory is O(T * (T + max_output)), never N x N; work is O(N * (T + K)) for K
boxes kept. The walk stops early once max_output boxes are kept or the next tile holds only
invalid (score -inf) boxes; the result is exactly greedy NMS truncated to max_output.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from mrcnn_jax.ops._checks import check_array, check_same_leading
from mrcnn_jax.ops.boxes import pairwise_iou

DEFAULT_TILE = 512


def _tile_keep(tile_iou, alive, threshold):
  """Greedy NMS inside one tile: alive [T] bool, tile_iou [T, T] -> keep [T] bool."""
  t = alive.shape[0]
  earlier = jnp.arange(t)[:, None] < jnp.arange(t)[None, :]
  suppresses = (tile_iou > threshold) & earlier  # [j, i]: j comes first and overlaps i

  def step(state):
    keep, _ = state
    new = alive & ~jnp.any(suppresses & keep[:, None], axis=0)
    return new, jnp.any(new != keep)

  keep, _ = lax.while_loop(lambda s: s[1], step, (alive, jnp.array(True)))
  return keep


def _suppressed_by_kept(tb, tg, kept_boxes, kept_groups, count, threshold):
  """[T] bool: tile boxes tb overlapping one of the first `count` kept boxes of their group.

  Visits the kept buffer in [T]-sized chunks, only as many as are filled, so the work tracks
  the number of boxes kept so far rather than the buffer's size.
  """
  tile = tb.shape[0]

  def chunk(c, dead):
    kb = lax.dynamic_slice_in_dim(kept_boxes, c * tile, tile)
    kg = lax.dynamic_slice_in_dim(kept_groups, c * tile, tile)
    filled = c * tile + jnp.arange(tile) < count
    hit = (pairwise_iou(tb, kb) > threshold) & (tg[:, None] == kg[None]) & filled[None]
    return dead | jnp.any(hit, axis=1)

  return lax.fori_loop(0, (count + tile - 1) // tile, chunk, jnp.zeros((tile,), bool))


def _nms_sorted(boxes, scores, groups, iou_threshold, max_output, tile_size):
  """Core: boxes [N, 4], scores [N], groups [N] int (only equal groups suppress each other)."""
  n = boxes.shape[0]
  if n == 0 or max_output == 0:
    return jnp.full((max_output,), -1, jnp.int32), jnp.zeros((), jnp.int32)
  tile = min(tile_size, -(-n // 8) * 8)
  num_tiles = -(-n // tile)
  pad = num_tiles * tile - n
  slots = min(max_output, n)
  buffer = -(-slots // tile) * tile  # kept-box buffer, whole chunks of `tile`

  order = jnp.argsort(scores, descending=True, stable=True).astype(jnp.int32)
  boxes = jnp.pad(boxes[order].astype(jnp.float32), ((0, pad), (0, 0)))
  valid = jnp.pad(scores[order] > -jnp.inf, (0, pad))
  groups = jnp.pad(groups[order], (0, pad))
  order = jnp.pad(order, (0, pad), constant_values=-1)
  threshold = jnp.asarray(iou_threshold, jnp.float32)

  def tile_slice(x, t):
    return lax.dynamic_slice_in_dim(x, t * tile, tile)

  def cond(state):
    t, count = state[0], state[1]
    return (t < num_tiles) & (count < slots) & valid[jnp.minimum(t, num_tiles - 1) * tile]

  def body(state):
    t, count, kept_boxes, kept_groups, kept_idx = state
    tb, tg = tile_slice(boxes, t), tile_slice(groups, t)
    dead = _suppressed_by_kept(tb, tg, kept_boxes, kept_groups, count, threshold)
    same = tg[:, None] == tg[None, :]
    keep = _tile_keep(jnp.where(same, pairwise_iou(tb, tb), 0.0), tile_slice(valid, t) & ~dead, threshold)
    pos = count + jnp.cumsum(keep) - 1
    pos = jnp.where(keep & (pos < slots), pos, buffer)  # out of range: dropped by the scatters
    kept_boxes = kept_boxes.at[pos].set(tb, mode="drop")
    kept_groups = kept_groups.at[pos].set(tg, mode="drop")
    kept_idx = kept_idx.at[pos].set(tile_slice(order, t), mode="drop")
    return t + 1, jnp.minimum(count + jnp.sum(keep, dtype=jnp.int32), slots), kept_boxes, kept_groups, kept_idx

  init = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((buffer, 4), jnp.float32),
          jnp.zeros((buffer,), groups.dtype), jnp.full((buffer,), -1, jnp.int32))
  _, count, _, _, kept_idx = lax.while_loop(cond, body, init)
  indices = jnp.pad(kept_idx[:slots], (0, max_output - slots), constant_values=-1)
  return indices, count


def _check_common(boxes, scores, max_output, tile_size):
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  scores = check_array("scores", scores, ndim=1, kind="float")
  check_same_leading(("boxes", "scores"), boxes, scores)
  if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
    raise ValueError(f"max_output must be a non-negative Python int, got {max_output!r}")
  if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 8 or tile_size % 8:
    raise ValueError(f"tile_size must be a positive multiple of 8, got {tile_size!r}")
  return boxes, scores


@functools.partial(jax.jit, static_argnames=("max_output", "tile_size"))
def nms(boxes, scores, iou_threshold, max_output, tile_size=DEFAULT_TILE):
  """Greedy NMS: drop a box when it overlaps a higher-scored kept box with IoU > iou_threshold.

  Args:
    boxes: [N, 4] float (x1, y1, x2, y2).
    scores: [N] float; -inf marks an invalid box that is never kept.
    iou_threshold: float scalar (may be traced).
    max_output: static int, number of output slots.
    tile_size: static int, boxes processed per loop step (a multiple of 8).
  Returns:
    indices [max_output] int32 into boxes, highest score first (equal scores: lower index
    first), -1 padded; num_valid int32 scalar, the number of non-padding entries.
  """
  boxes, scores = _check_common(boxes, scores, max_output, tile_size)
  groups = jnp.zeros(scores.shape, jnp.int32)
  return _nms_sorted(boxes, scores, groups, iou_threshold, max_output, tile_size)


@functools.partial(jax.jit, static_argnames=("max_output", "tile_size"))
def batched_nms(boxes, scores, classes, iou_threshold, max_output, tile_size=DEFAULT_TILE):
  """NMS run independently per class, merged by score; same arguments and return as `nms`.

  classes: [N] int. Boxes of different classes never suppress each other. Instead of shifting
  boxes by a class-dependent offset (which costs float precision on large canvases), the IoU
  is masked to pairs of the same class, which gives exactly the per-class result.
  """
  boxes, scores = _check_common(boxes, scores, max_output, tile_size)
  classes = check_array("classes", classes, ndim=1, kind="int")
  check_same_leading(("boxes", "classes"), boxes, classes)
  return _nms_sorted(boxes, scores, classes, iou_threshold, max_output, tile_size)
