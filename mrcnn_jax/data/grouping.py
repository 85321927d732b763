"""Batches of one canvas each: examples grouped by the canvas they sit on (Detectron2's aspect grouping).

``CanvasGroupedIterator`` reads single examples from a grain iterator, keeps one buffer per canvas
shape and yields a batch when a buffer holds ``batch_size`` examples: every batch has one static shape,
consecutive batches may differ (one compiled step per canvas). A finite stream ends by yielding each
buffer's remainder filled up with ``blank(canvas)`` examples.

It resumes exactly: its state is the source's state before the oldest buffered example, that example's
position, and the positions after it that were already yielded. Restoring re-reads from there, drops
those, and so refills the same buffers; no buffer can fill during the replay (each held fewer than
``batch_size`` examples when the state was taken).
"""

from __future__ import annotations

import json

import numpy as np


class CanvasGroupedIterator:
  """Iterator of batches (dicts of [B,...] arrays) with ``get_state`` / ``set_state`` (JSON bytes)."""

  def __init__(self, examples, batch_size: int, blank=None):
    """examples: a grain iterator of single examples (``get_state`` / ``set_state`` as bytes);
    blank(canvas) -> a padding example, to end a finite stream with partial batches (None: dropped)."""
    self._examples, self._batch_size, self._blank = examples, batch_size, blank
    self._restart(position=0, skip=())

  def _restart(self, position: int, skip) -> None:
    self._buffers = {}         # canvas (h, w) -> [(position, example)]
    self._states = {}          # position of a buffered example -> the source's state before it
    self._position = position  # examples read from the source so far
    self._skip = set(skip)     # positions already yielded before a restore: dropped when re-read
    self._yielded = set()      # positions yielded after the oldest buffered one

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    while True:
      state = self._examples.get_state()
      try:
        example = next(self._examples)
      except StopIteration:
        return self._flush()
      position, self._position = self._position, self._position + 1
      if position in self._skip:
        self._skip.discard(position)
        continue
      buffer = self._buffers.setdefault(tuple(example["image"].shape[:2]), [])
      buffer.append((position, example))
      self._states[position] = state
      if len(buffer) == self._batch_size:
        return self._emit(buffer)

  def _emit(self, buffer: list) -> dict:
    positions = [p for p, _ in buffer if p is not None]  # None: a blank example
    batch = _stack([e for _, e in buffer])
    buffer.clear()
    for p in positions:
      del self._states[p]
    oldest = min(self._states, default=self._position)
    self._yielded = {p for p in self._yielded | set(positions) if p > oldest}
    return batch

  def _flush(self) -> dict:
    for canvas, buffer in sorted(self._buffers.items()):  # sorted: the same order after a restore
      if buffer and self._blank is not None:
        buffer += [(None, self._blank(canvas))] * (self._batch_size - len(buffer))
        return self._emit(buffer)
    raise StopIteration

  def get_state(self) -> bytes:
    oldest = min(self._states, default=None)
    source = self._examples.get_state() if oldest is None else self._states[oldest]
    position = self._position if oldest is None else oldest
    skip = sorted(p for p in self._yielded | self._skip if p >= position)
    return json.dumps({"source": source.decode(), "position": position, "skip": skip}).encode()

  def set_state(self, state: bytes) -> None:
    saved = json.loads(state)
    self._examples.set_state(saved["source"].encode())
    self._restart(saved["position"], saved["skip"])

  def start_prefetch(self) -> None:
    """Called by grain's checkpoint handler after a restore."""
    if hasattr(self._examples, "start_prefetch"):
      self._examples.start_prefetch()


def _stack(examples: list[dict]) -> dict:
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}
