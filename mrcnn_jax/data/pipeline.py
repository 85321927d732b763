"""The grain input pipeline: TFDS ArrayRecord source -> decode -> preprocess -> per-host batches.

Reading needs no TensorFlow. `train_iterator` is infinite, shuffled by config.train.seed, with random
horizontal flips drawn from grain's per-record generator (a function of the seed and the record's
position), so a run is reproducible and resumable: `it.get_state()` -> new iterator `.set_state(state)`
continues with the same batches. `eval_iterator` reads each example once and pads the end of the
stream with blank examples whose image_id is -1 (in the last batch with num_workers = 0; spread over
the last num_workers batches otherwise, as grain deals records to workers round-robin).
Hosts read disjoint shards (shard_index/shard_count). With several fixed canvases
(``config.data.canvases``), each example goes on the smallest that holds it and batches are grouped by
canvas (``grouping.py``; one process).
Batches are dicts of numpy arrays with static shapes, as batch_spec.py defines them.
"""

import dataclasses
import functools
import math

import grain
import numpy as np
from absl import flags, logging

from mrcnn_jax.data import batch_spec, preprocess, sources
from mrcnn_jax.data import canvas as canvas_lib
from mrcnn_jax.data import grouping
from mrcnn_jax.errors import UserError

# Records read ahead per process: enough to overlap with preprocessing, small enough for RAM.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=32)


class _PaddedSource:
  """A data source lengthened to `length` with None records (turned into blank examples)."""

  def __init__(self, source, length: int):
    self._source, self._length = source, length

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):
    return self._source[index] if index < len(self._source) else None


@dataclasses.dataclass(frozen=True)
class _Preprocess(grain.transforms.RandomMap):
  """Raw TFDS example (or None for padding) -> one static-shape example."""
  with_masks: bool
  canvases: tuple  # (h, w) pairs: each example goes on the smallest that holds it
  min_size: int
  max_size: int
  max_instances: int
  mask_size: int
  flip: bool
  num_keypoints: int
  flip_map: tuple  # (i, j) keypoint pairs a flip swaps

  def random_map(self, element, rng: np.random.Generator):
    if element is None:
      return batch_spec.blank_example(self.canvases[0], self.max_instances, self.mask_size, self.num_keypoints)
    record = sources.to_record(element, self.with_masks)
    return preprocess.preprocess(
        record, canvases=self.canvases, min_size=self.min_size, max_size=self.max_size,
        max_instances=self.max_instances, mask_size=self.mask_size,
        flip=self.flip and bool(rng.random() < 0.5), num_keypoints=self.num_keypoints,
        flip_map=self.flip_map)


def _check(config, shard_index: int, shard_count: int, batch_size: int) -> int:
  """Validates config.data and the sharding; returns the per-host batch size."""
  canvas_lib.check(config.data)
  if shard_count > 1 and len(canvas_lib.canvases(config.data)) > 1:
    raise UserError("config.data.canvases lists several canvases: grouping batches by canvas runs in one "
                    f"process for now, not {shard_count} (list one canvas for a multi-host run)")
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} not in [0, shard_count={shard_count})")
  if batch_size % shard_count:
    raise UserError(f"the global batch size ({batch_size}, config.data) must be divisible by "
                     f"shard_count ({shard_count})")
  return batch_size // shard_count


def _keypoints(config, builder) -> tuple[int, tuple]:
  """(K, flip map) the batches carry: config.model.keypoint.num_keypoints (0: no keypoints), and
  config.data.keypoint_flip_map or, when empty, the dataset's. UserError if the dataset has other K."""
  k = config.model.keypoint.num_keypoints
  dataset_k = sources.num_keypoints(builder)
  if k and k != dataset_k:
    raise UserError(f"config.model.keypoint.num_keypoints={k} but dataset {config.data.name!r} has "
                    f"{dataset_k} keypoints per instance: set it to {dataset_k}"
                    + (", or 0 for no keypoint branch" if dataset_k else " (a model without keypoints)"))
  pairs = config.data.keypoint_flip_map or sources.keypoint_info(builder).get("keypoint_flip_map", ())
  return k, tuple(tuple(int(i) for i in pair) for pair in pairs)


def _preprocess_op(config, builder, flip: bool) -> _Preprocess:
  data = config.data
  if not sources.has_masks(builder):
    logging.warning("dataset %r has no instance masks (TFDS coco/2017 stores boxes only): every GT "
                    "mask is its whole box. Prepare COCO with `prepare folder` for real masks.",
                    data.name)
  num_keypoints, flip_map = _keypoints(config, builder)
  return _Preprocess(with_masks=sources.has_masks(builder), canvases=canvas_lib.canvases(data),
                     min_size=data.min_size, max_size=data.max_size,
                     max_instances=data.max_instances, mask_size=data.gt_mask_size, flip=flip,
                     num_keypoints=num_keypoints, flip_map=flip_map)


def _iterator(config, source, sampler, op: _Preprocess, per_host: int, finite: bool):
  """Batches of ``per_host`` examples; with several canvases, grouped by canvas (``grouping.py``):
  a finite stream ends with each canvas's partial batch filled up with blank examples."""
  workers = int(config.data.num_workers)
  if workers > 0 and not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags (parsed under app.run)
  grouped = len(op.canvases) > 1
  batch = [] if grouped else [grain.transforms.Batch(per_host, drop_remainder=True)]
  loader = grain.DataLoader(data_source=source, sampler=sampler, operations=[op, *batch],
                            worker_count=workers, read_options=_READ_OPTIONS)
  if not grouped:
    return iter(loader)
  blank = functools.partial(batch_spec.blank_example, max_instances=op.max_instances,
                            mask_size=op.mask_size, num_keypoints=op.num_keypoints) if finite else None
  return grouping.CanvasGroupedIterator(iter(loader), per_host, blank)


def train_iterator(config, *, shard_index: int = 0, shard_count: int = 1):
  """Infinite shuffled iterator of per-host training batches with get_state()/set_state()."""
  per_host = _check(config, shard_index, shard_count, config.data.batch_size)
  builder = sources.open_builder(config.data)
  source = sources.data_source(builder, config.data.train_split)
  if len(source) < shard_count:
    raise UserError(f"split {config.data.train_split!r} has {len(source)} examples, fewer than "
                     f"shard_count ({shard_count})")
  sampler = grain.samplers.IndexSampler(
      num_records=len(source), shuffle=True, num_epochs=None, seed=int(config.train.seed),
      shard_options=grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=True))
  return _iterator(config, source, sampler, _preprocess_op(config, builder, bool(config.data.flip)),
                   per_host, finite=False)


def eval_iterator(config, split=None, *, shard_index: int = 0, shard_count: int = 1):
  """Finite in-order iterator over `split` (default config.data.eval_split); no flip or shuffle.

  Global batch: config.data.eval_batch_size (else batch_size). Every host gets the same number of
  full batches; the padding examples have image_id -1.
  """
  per_host = _check(config, shard_index, shard_count, config.data.eval_batch_size)
  split = split or config.data.eval_split
  builder = sources.open_builder(config.data)
  source = sources.data_source(builder, split)
  global_batch = per_host * shard_count
  padded = _PaddedSource(source, max(1, math.ceil(len(source) / global_batch)) * global_batch)
  sampler = grain.samplers.IndexSampler(
      num_records=len(padded), shuffle=False, num_epochs=1, seed=0,
      shard_options=grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=True))
  return _iterator(config, padded, sampler, _preprocess_op(config, builder, False), per_host, finite=True)


def class_info(config):
  """(class names, dataset category ids) of classes 1..K, for evaluation and visualization."""
  return sources.class_info(sources.open_builder(config.data))


def resolve_classes(config):
  """``config.num_classes`` and ``class_names`` checked against the prepared dataset, in place:
  num_classes 0 takes both from the dataset; otherwise it must match the dataset, and empty
  class_names become the dataset's. Raises UserError naming both numbers on a contradiction.
  The keypoint fields likewise (``resolve_keypoints``)."""
  resolve_keypoints(config)
  names = tuple(class_info(config)[0])
  k = config.num_classes
  if k and k != len(names):
    raise UserError(f"config.num_classes={k} but dataset {config.data.name!r} has {len(names)} "
                    f"classes {names}: set config.num_classes={len(names)}, or 0 to take the number "
                    "and the names from the dataset")
  if k and config.class_names and len(config.class_names) != k:
    raise UserError(f"config.class_names has {len(config.class_names)} names but "
                    f"config.num_classes={k}: give {k} names, or none to take the dataset's")
  config.num_classes = len(names)
  config.class_names = tuple(config.class_names) if k and config.class_names else names


def resolve_keypoints(config):
  """``config.model.keypoint.num_keypoints`` checked against the prepared dataset (K > 0 must be the
  dataset's), and empty ``config.data.keypoint_{names,flip_map,sigmas,skeleton}`` set to the dataset's,
  in place. UserError on a contradiction."""
  builder = sources.open_builder(config.data)
  k, flip_map = _keypoints(config, builder)
  info = sources.keypoint_info(builder)
  d = config.data
  d.keypoint_flip_map = flip_map
  d.keypoint_skeleton = tuple(tuple(p) for p in d.keypoint_skeleton or info.get("keypoint_skeleton", ()))
  for field in ("keypoint_names", "keypoint_sigmas"):
    d[field] = tuple(d[field]) or tuple(info.get(field, ()))
    if k and len(d[field]) != k:
      raise UserError(f"config.data.{field} has {len(d[field])} entries but there are {k} keypoints: "
                      "give one per keypoint, or none to take the dataset's")
  if k and any(not 0 <= i < k for pair in flip_map for i in pair):
    raise UserError(f"config.data.keypoint_flip_map {flip_map}: indices must be in 0..{k - 1}")
