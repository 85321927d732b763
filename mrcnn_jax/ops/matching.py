"""Assigning anchors/proposals to ground truth (IoU matcher) and balanced fg/bg sampling.

Static-shape versions of Detectron2's Matcher and subsample_labels: padded ground truth is
masked out, unlabelled slots are -1, and sampling ranks random keys with top_k instead of
nonzero + randperm.
"""

import jax
import jax.numpy as jnp

from mrcnn_jax.ops._checks import check_array

FOREGROUND, BACKGROUND, IGNORE = 1, 0, -1


def match(iou, gt_valid, gt_crowd, fg_threshold, bg_threshold, allow_low_quality):
  """Labels each of N anchors/proposals from its IoU with G ground-truth boxes.

  With best = the highest IoU over valid, non-crowd GT:
    best >= fg_threshold -> 1, best < bg_threshold -> 0, otherwise -1 (the ignore band;
    bg_threshold == fg_threshold gives none).
  allow_low_quality: for each valid non-crowd GT with a positive maximum IoU, every anchor that
    reaches that maximum becomes fg (Detectron2's set_low_quality_matches_; its matched_gt
    stays its own best GT).
  Crowd GT are never matched: an anchor whose IoU with some crowd GT is strictly higher than
    `best` and at least bg_threshold is ignored (-1), overriding the rules above. Invalid
    (padding) GT take no part at all.

  Args:
    iou: [G, N] float.
    gt_valid: [G] bool. gt_crowd: [G] bool.
    fg_threshold, bg_threshold: floats with bg_threshold <= fg_threshold.
    allow_low_quality: static bool.
  Returns:
    matched_gt [N] int32 (best valid non-crowd GT; 0 when there is none, meaningful where
    labels == 1), labels [N] int32 in {1, 0, -1}.
  """
  iou = check_array("iou", iou, ndim=2, kind="float")
  gt_valid = check_array("gt_valid", gt_valid, ndim=1, kind="bool")
  gt_crowd = check_array("gt_crowd", gt_crowd, ndim=1, kind="bool")
  g, n = iou.shape
  for name, arr in (("gt_valid", gt_valid), ("gt_crowd", gt_crowd)):
    if arr.shape[0] != g:
      raise ValueError(f"{name} must have shape [{g}] to match iou [G, N], got {tuple(arr.shape)}")
  if not isinstance(allow_low_quality, bool):
    raise ValueError(f"allow_low_quality must be a Python bool, got {allow_low_quality!r}")
  if isinstance(fg_threshold, (int, float)) and isinstance(bg_threshold, (int, float)):
    if bg_threshold > fg_threshold:
      raise ValueError(f"bg_threshold ({bg_threshold}) must not exceed fg_threshold ({fg_threshold})")
  if g == 0:
    return jnp.zeros((n,), jnp.int32), jnp.zeros((n,), jnp.int32)

  real = (gt_valid & ~gt_crowd)[:, None]
  crowd = (gt_valid & gt_crowd)[:, None]
  iou_real = jnp.where(real, iou, -1.0)
  matched_gt = jnp.argmax(iou_real, axis=0).astype(jnp.int32)
  best = jnp.max(iou_real, axis=0)

  labels = jnp.where(best >= fg_threshold, FOREGROUND,
                     jnp.where(best < bg_threshold, BACKGROUND, IGNORE)).astype(jnp.int32)
  if allow_low_quality:
    gt_best = jnp.max(iou_real, axis=1, keepdims=True)
    low_quality = jnp.any(real & (gt_best > 0) & (iou_real == gt_best), axis=0)
    labels = jnp.where(low_quality, FOREGROUND, labels)
  best_crowd = jnp.max(jnp.where(crowd, iou, -1.0), axis=0)
  labels = jnp.where((best_crowd > best) & (best_crowd >= bg_threshold), IGNORE, labels)
  return matched_gt, labels


def positive_slots(num_samples: int, positive_fraction: float) -> int:
  """How many of ``num_samples`` sampled slots may hold foreground: int(num_samples * fraction)."""
  return int(num_samples * positive_fraction)


def sample_balanced(key, labels, num_samples, positive_fraction):
  """Draws up to num_samples labelled entries, at most a positive_fraction of them fg.

  Like Detectron2's subsample_labels: take min(#fg, positive_slots(num_samples, positive_fraction))
  random fg, fill the rest with random bg; if there are too few, the tail is padding.

  Args:
    key: PRNG key.
    labels: [N] int in {1 fg, 0 bg, -1 ignore}.
    num_samples: static int. positive_fraction: static float in [0, 1].
  Returns:
    indices [num_samples] int32 (fg first, then bg, then -1 padding);
    sampled_labels [num_samples] int32: 1, 0, or -1 for padding.
  """
  labels = check_array("labels", labels, ndim=1, kind="int")
  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
    raise ValueError(f"num_samples must be a non-negative Python int, got {num_samples!r}")
  if not 0.0 <= positive_fraction <= 1.0:
    raise ValueError(f"positive_fraction must lie in [0, 1], got {positive_fraction!r}")
  n = labels.shape[0]
  max_pos = positive_slots(num_samples, positive_fraction)
  is_pos, is_neg = labels == FOREGROUND, labels == BACKGROUND
  take_pos = jnp.minimum(jnp.sum(is_pos, dtype=jnp.int32), max_pos)
  take_neg = jnp.minimum(jnp.sum(is_neg, dtype=jnp.int32), num_samples - take_pos)

  u = jax.random.uniform(key, (n,))
  pos_idx = _ranked(jnp.where(is_pos, u, -1.0), min(max_pos, n))
  neg_idx = _ranked(jnp.where(is_neg, u, -1.0), min(num_samples, n))
  slot = jnp.arange(num_samples, dtype=jnp.int32)
  from_pos = slot < take_pos
  from_neg = ~from_pos & (slot < take_pos + take_neg)
  indices = jnp.where(from_pos, _gather(pos_idx, slot),
                      jnp.where(from_neg, _gather(neg_idx, slot - take_pos), -1))
  sampled = jnp.where(from_pos, FOREGROUND, jnp.where(from_neg, BACKGROUND, IGNORE))
  return indices.astype(jnp.int32), sampled.astype(jnp.int32)


def _ranked(keys, k):
  """Indices [k] of the k largest keys (k may be 0)."""
  if k == 0:
    return jnp.zeros((0,), jnp.int32)
  return jax.lax.top_k(keys, k)[1].astype(jnp.int32)


def _gather(values, positions):
  """values[positions] with out-of-range positions reading 0 (they are masked by the caller)."""
  if values.shape[0] == 0:
    return jnp.zeros(positions.shape, jnp.int32)
  return jnp.take(values, positions, mode="fill", fill_value=0)
