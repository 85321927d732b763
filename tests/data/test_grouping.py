"""CanvasGroupedIterator: one canvas per batch, every example once, exact resume from any point."""

import json

import numpy as np
import pytest

from mrcnn_jax.data.grouping import CanvasGroupedIterator

LANDSCAPE, PORTRAIT = (32, 64), (64, 32)


class ListIterator:
  """A stand-in for grain's iterator: examples from a list, state = the next index as JSON bytes."""

  def __init__(self, examples):
    self.examples, self.index = examples, 0

  def __next__(self):
    if self.index == len(self.examples):
      raise StopIteration
    self.index += 1
    return self.examples[self.index - 1]

  def get_state(self) -> bytes:
    return json.dumps({"index": self.index}).encode()

  def set_state(self, state: bytes) -> None:
    self.index = json.loads(state)["index"]


def stream(n, seed=0):
  """n examples, mostly landscape (as COCO's photographs), each tagged with its position."""
  rng = np.random.default_rng(seed)
  return [{"image": np.zeros((*(PORTRAIT if rng.random() < 0.3 else LANDSCAPE), 3), np.uint8),
           "image_id": np.int64(i)} for i in range(n)]


def blank(canvas):
  return {"image": np.zeros((*canvas, 3), np.uint8), "image_id": np.int64(-1)}


def test_batches_are_one_canvas_each_and_hold_every_example_once():
  examples = stream(40)
  batches = list(CanvasGroupedIterator(ListIterator(examples), 4, blank))
  assert all(len({tuple(im.shape) for im in b["image"]}) == 1 for b in batches)
  ids = np.concatenate([b["image_id"] for b in batches])
  assert sorted(ids[ids >= 0].tolist()) == list(range(40))
  assert (ids < 0).sum() < 2 * 4                       # at most one partial batch per canvas
  for b in batches:                                    # each canvas in stream order
    real = b["image_id"][b["image_id"] >= 0]
    assert (np.diff(real) > 0).all()


def test_an_infinite_stream_drops_nothing_it_yields_twice_or_partial_batches():
  batches = list(CanvasGroupedIterator(ListIterator(stream(40)), 4))
  ids = np.concatenate([b["image_id"] for b in batches])
  assert (ids >= 0).all() and len(set(ids.tolist())) == len(ids)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_from_any_point_gives_the_same_batches(seed):
  examples = stream(60, seed)
  expected = list(CanvasGroupedIterator(ListIterator(examples), 4, blank))
  for cut in range(len(expected)):
    it = CanvasGroupedIterator(ListIterator(examples), 4, blank)
    for _ in range(cut):
      next(it)
    state = it.get_state()
    resumed = CanvasGroupedIterator(ListIterator(examples), 4, blank)
    resumed.set_state(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - cut
    for want, got in zip(expected[cut:], rest):
      np.testing.assert_array_equal(want["image_id"], got["image_id"])
      assert want["image"].shape == got["image"].shape
    # A state taken right after a restore (before the replay is read) resumes the same way.
    again = CanvasGroupedIterator(ListIterator(examples), 4, blank)
    again.set_state(state)
    twice = CanvasGroupedIterator(ListIterator(examples), 4, blank)
    twice.set_state(again.get_state())
    assert [b["image_id"].tolist() for b in twice] == [b["image_id"].tolist() for b in rest]
