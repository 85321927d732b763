"""Tests for mrcnn_jax.ops.matching: hand-made IoU matrices for the matcher, statistics of the sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax.ops import matching as M

T, F = True, False


def run_match(iou, valid, crowd, fg=0.7, bg=0.3, low_quality=False):
  matched, labels = M.match(jnp.array(iou, jnp.float32), jnp.array(valid), jnp.array(crowd),
                            fg, bg, low_quality)
  assert matched.dtype == jnp.int32 and labels.dtype == jnp.int32
  return np.asarray(matched), np.asarray(labels)


def test_thresholds_and_ignore_band():
  iou = [[0.9, 0.5, 0.1, 0.3, 0.69, 0.0],
         [0.2, 0.75, 0.0, 0.29, 0.1, 0.7]]
  matched, labels = run_match(iou, [T, T], [F, F])
  np.testing.assert_array_equal(labels, [1, 1, 0, -1, -1, 1])  # 0.3 is in the band, 0.7 is fg
  np.testing.assert_array_equal(matched[[0, 1, 5]], [0, 1, 1])
  _, labels = run_match(iou, [T, T], [F, F], fg=0.5, bg=0.5)  # RoI-head style: no band
  np.testing.assert_array_equal(labels, [1, 1, 0, 0, 1, 1])


def test_low_quality_matches():
  # GT 1 never reaches 0.7; its best anchors (ties included) become fg, matched to their own best GT.
  iou = [[0.8, 0.1, 0.0, 0.45],
         [0.1, 0.4, 0.4, 0.35]]
  matched, labels = run_match(iou, [T, T], [F, F], low_quality=True)
  np.testing.assert_array_equal(labels, [1, 1, 1, -1])
  np.testing.assert_array_equal(matched[:3], [0, 1, 1])
  _, labels = run_match(iou, [T, T], [F, F], low_quality=False)
  np.testing.assert_array_equal(labels, [1, -1, -1, -1])
  # A GT with no overlap at all creates no low-quality match.
  _, labels = run_match([[0.0, 0.0, 0.0]], [T], [F], low_quality=True)
  np.testing.assert_array_equal(labels, [0, 0, 0])


def test_padded_gt_is_never_matched():
  iou = [[0.1, 0.2, 0.0],
         [0.95, 0.9, 0.0]]  # row 1 is padding
  matched, labels = run_match(iou, [T, F], [F, F], low_quality=True)
  np.testing.assert_array_equal(labels, [0, 1, 0])  # anchor 1 is GT 0's low-quality match
  np.testing.assert_array_equal(matched, [0, 0, 0])
  matched, labels = run_match(iou, [F, F], [F, F], low_quality=True)  # no GT at all
  np.testing.assert_array_equal(labels, [0, 0, 0])


def test_crowd_is_ignored_never_fg():
  iou = [[0.8, 0.75, 0.4, 0.2, 0.0],   # crowd
         [0.1, 0.85, 0.1, 0.1, 0.35]]  # real
  matched, labels = run_match(iou, [T, T], [T, F], low_quality=True)
  # 0, 2: crowd is the best match (>= bg) -> ignore; 1: the real 0.85 beats the crowd -> fg on GT 1;
  # 3: crowd is best but below bg -> bg; 4: real 0.35 is in the band and crowd does not matter.
  np.testing.assert_array_equal(labels, [-1, 1, -1, 0, -1])
  assert matched[1] == 1
  # Only crowd GT: nothing is fg even with low-quality matching.
  _, labels = run_match(iou[:1], [T], [T], low_quality=True)
  np.testing.assert_array_equal(labels, [-1, -1, -1, 0, 0])  # crowd-only: never fg


def test_match_edge_shapes_and_jit():
  matched, labels = M.match(jnp.zeros((0, 4)), jnp.zeros((0,), bool), jnp.zeros((0,), bool), 0.7, 0.3, True)
  assert matched.shape == labels.shape == (4,) and not np.asarray(labels).any()
  iou = jax.random.uniform(jax.random.key(0), (5, 50))
  valid, crowd = jnp.array([T, T, T, F, T]), jnp.array([F, F, T, F, F])
  fn = lambda i, v, c: M.match(i, v, c, 0.7, 0.3, True)
  for a, b in zip(jax.jit(fn)(iou, valid, crowd), fn(iou, valid, crowd)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, name", [
    (lambda: M.match(jnp.zeros((2, 3, 1)), jnp.ones(2, bool), jnp.zeros(2, bool), 0.7, 0.3, True), "iou"),
    (lambda: M.match(jnp.zeros((2, 3)), jnp.ones(2), jnp.zeros(2, bool), 0.7, 0.3, True), "gt_valid"),
    (lambda: M.match(jnp.zeros((2, 3)), jnp.ones(2, bool), jnp.zeros(3, bool), 0.7, 0.3, True), "gt_crowd"),
    (lambda: M.match(jnp.zeros((2, 3)), jnp.ones(2, bool), jnp.zeros(2, bool), 0.3, 0.7, True), "bg_threshold"),
    (lambda: M.sample_balanced(jax.random.key(0), jnp.zeros(5), 4, 0.5), "labels"),
    (lambda: M.sample_balanced(jax.random.key(0), jnp.zeros(5, jnp.int32), 4, 1.5), "positive_fraction"),
    (lambda: M.sample_balanced(jax.random.key(0), jnp.zeros(5, jnp.int32), 4.0, 0.5), "num_samples"),
])
def test_bad_arguments_raise(call, name):
  with pytest.raises(ValueError, match=name):
    call()


def make_labels(num_pos, num_neg, num_ignore, seed=0):
  labels = np.array([1] * num_pos + [0] * num_neg + [-1] * num_ignore, np.int32)
  return jnp.asarray(np.random.default_rng(seed).permutation(labels))


sample = jax.jit(M.sample_balanced, static_argnums=(2, 3))


@pytest.mark.parametrize("num_pos, num_neg, num_ignore, want_pos, want_neg", [
    (100, 1000, 300, 64, 192),   # plenty: the fraction is met exactly
    (10, 1000, 300, 10, 246),    # few fg: bg fill the rest
    (100, 20, 300, 64, 20),      # few bg: the tail is padding
    (5, 20, 300, 5, 20),
    (0, 0, 50, 0, 0),            # nothing labelled: all padding
])
def test_sampler_counts(num_pos, num_neg, num_ignore, want_pos, want_neg):
  labels = make_labels(num_pos, num_neg, num_ignore)
  indices, sampled = sample(jax.random.key(1), labels, 256, 0.25)
  indices, sampled = np.asarray(indices), np.asarray(sampled)
  assert indices.shape == sampled.shape == (256,) and indices.dtype == np.int32
  assert (sampled == 1).sum() == want_pos and (sampled == 0).sum() == want_neg
  picked = indices[sampled >= 0]
  np.testing.assert_array_equal(np.asarray(labels)[picked], sampled[sampled >= 0])  # never ignored
  assert len(np.unique(picked)) == len(picked)
  assert (indices[sampled < 0] == -1).all()


def test_sampler_randomness():
  labels = make_labels(100, 1000, 0)
  a = np.asarray(sample(jax.random.key(1), labels, 64, 0.5)[0])
  b = np.asarray(sample(jax.random.key(2), labels, 64, 0.5)[0])
  c = np.asarray(sample(jax.random.key(1), labels, 64, 0.5)[0])
  np.testing.assert_array_equal(a, c)
  assert len(set(a) & set(b)) < 32
  # Every positive gets picked about equally often over many keys (uniform draw).
  keys = jax.random.split(jax.random.key(3), 200)
  labels = make_labels(20, 100, 0)
  picks = jax.vmap(lambda k: sample(k, labels, 16, 0.25)[0][:4])(keys)
  counts = np.bincount(np.asarray(picks).ravel(), minlength=120)[np.asarray(labels) == 1]
  assert counts.min() > 15 and counts.max() < 70  # expected 40 each
