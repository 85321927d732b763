"""Which canvas an image goes on: (height, width) shapes, each a multiple of 32 (the coarsest FPN stride).

Every shape the model sees is static, so each canvas shape is one compiled program. Two choices:
  - ``config.data.canvases``: a fixed list of (h, w) canvases (empty: the square ``config.data.canvas``).
    Training groups its batches by canvas; an image goes on the smallest listed canvas that holds its
    resized size (landscape / portrait buckets, Detectron2's aspect grouping).
  - ``config.data.size_divisibility`` > 0 (inference only): the resized image rounded up to a multiple
    of it, what Detectron2 and torchvision feed their backbones (32); a coarser step bounds compiles.
Numpy only: inference imports this alone.
"""

from __future__ import annotations

from mrcnn_jax.errors import UserError

STRIDE = 32  # the coarsest stride a canvas must divide into (P5; P6 pools P5 with stride 2, ceil)


def _round_up(n: int, step: int) -> int:
  return -(-int(n) // step) * step


def canvases(data) -> tuple[tuple[int, int], ...]:
  """config.data's fixed canvases as (h, w) pairs; UserError naming the field for a bad one."""
  listed = tuple(tuple(int(v) for v in c) for c in data.canvases) or ((data.canvas, data.canvas),)
  field = "config.data.canvases" if data.canvases else "config.data.canvas"
  for shape in listed:
    if len(shape) != 2 or min(shape) < STRIDE or any(v % STRIDE for v in shape):
      raise UserError(f"{field}: every canvas must be (height, width), each a positive multiple of "
                      f"{STRIDE}, got {shape if data.canvases else shape[0]}")
  return listed


def check(data) -> None:
  """UserError (naming the field) for canvases or sizes no image could be placed with."""
  listed = canvases(data)
  step = data.size_divisibility
  if step < 0 or step % STRIDE:
    raise UserError(f"config.data.size_divisibility must be 0 (the fixed canvases) or a multiple of {STRIDE}, "
                    f"got {step}")
  if data.min_size > data.max_size:
    raise UserError(f"config.data.min_size ({data.min_size}) must be <= max_size ({data.max_size})")
  longest = max(max(c) for c in listed)
  if data.max_size > longest:
    field = "config.data.canvases" if data.canvases else "config.data.canvas"
    raise UserError(f"config.data.max_size ({data.max_size}) must be <= the longest side of {field} "
                    f"({longest}): resized images must fit a canvas")


def fixed_canvas(height: int, width: int, listed) -> tuple[int, int]:
  """The smallest canvas of ``listed`` ((h, w) pairs, by area) holding a resized (height, width) image."""
  fits = [tuple(c) for c in listed if height <= c[0] and width <= c[1]]
  if not fits:
    raise UserError(f"a resized image of {height}x{width} fits none of the canvases {tuple(listed)} "
                    "(config.data.canvases, or config.data.canvas)")
  return min(fits, key=lambda c: (c[0] * c[1], c))


def inference_canvas(height: int, width: int, data) -> tuple[int, int]:
  """The canvas a resized (height, width) image is run on at inference (see the module doc)."""
  step = data.size_divisibility
  if step:
    return _round_up(height, step), _round_up(width, step)
  return fixed_canvas(height, width, canvases(data))


def describe(data) -> str:
  """How ``config.data`` (``data``) puts an image on its inference canvas, in a few words."""
  resize = f"resized to {data.min_size} / {data.max_size}"
  if data.size_divisibility:
    return f"{resize}, padded to a multiple of {data.size_divisibility}"
  return f"{resize}, on canvas {' or '.join(f'{h}x{w}' for h, w in canvases(data))}"


def export_canvases(data) -> tuple[tuple[int, int], ...]:
  """The canvases an exported model chooses from (smallest holding the resized image, in the graph):
  with ``size_divisibility``, a landscape and a portrait one holding every resized image; else the
  fixed canvases. Sorted by area."""
  step = data.size_divisibility
  if step:
    short, long = _round_up(data.min_size, step), _round_up(data.max_size, step)
    listed = ((short, long), (long, short)) if short != long else ((short, long),)
  else:
    listed = canvases(data)
  return tuple(sorted(listed, key=lambda c: (c[0] * c[1], c)))
