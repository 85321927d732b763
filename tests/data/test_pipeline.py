"""The grain pipeline: static batches, resumable train iterator, padded sharded eval, no TF at read."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mrcnn_jax.data import pipeline as data
from mrcnn_jax.configs import shapes_tiny


def _config(shapes_data, **data_overrides):
  data_dir, name, _ = shapes_data
  config = shapes_tiny.get_config()
  config.data.update(dict(name=name, data_dir=data_dir, canvas=64, min_size=48, max_size=64,
                          max_instances=8, gt_mask_size=16, batch_size=2, eval_batch_size=3,
                          num_workers=0))
  config.data.update(data_overrides)
  return config


def _spec(batch):
  return {k: (v.shape, v.dtype) for k, v in batch.items()}


def test_train_batches_have_static_shapes(shapes_data):
  it = data.train_iterator(_config(shapes_data))
  batches = [next(it) for _ in range(6)]                 # 12 examples: wraps past the 8 of an epoch
  spec = _spec(batches[0])
  assert all(_spec(b) == spec for b in batches)
  assert spec == {
      "image": ((2, 64, 64, 3), np.uint8), "image_size": ((2, 2), np.int32),
      "scale": ((2,), np.float32), "original_size": ((2, 2), np.int32), "image_id": ((2,), np.int64),
      "gt_boxes": ((2, 8, 4), np.float32), "gt_classes": ((2, 8), np.int32),
      "gt_masks": ((2, 8, 16, 16), np.uint8), "gt_valid": ((2, 8), bool), "gt_crowd": ((2, 8), bool)}
  for b in batches:
    valid = b["gt_valid"]
    assert ((b["gt_classes"] >= 1) == valid).all() and (b["gt_classes"] <= 4).all()
    assert (b["gt_boxes"][..., 2:] > b["gt_boxes"][..., :2])[valid].all()
    assert (b["image_size"] == 48).all() and np.allclose(b["scale"], 0.75)


def test_train_iterator_state_round_trips(shapes_data):
  config = _config(shapes_data)
  it = data.train_iterator(config)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(5)]
  resumed = data.train_iterator(config)
  resumed.set_state(state)
  for want, got in zip(expected, [next(resumed) for _ in range(5)]):
    for key in want:
      np.testing.assert_array_equal(want[key], got[key])
  # A fresh iterator with the same seed starts the same stream.
  again = data.train_iterator(config)
  np.testing.assert_array_equal(next(again)["image_id"], next(data.train_iterator(config))["image_id"])


def test_flip_is_random_but_seeded(shapes_data):
  def ids_and_widths(flip, seed):
    config = _config(shapes_data, flip=flip)
    config.train.seed = seed
    it = data.train_iterator(config)
    return [next(it) for _ in range(8)]
  plain, flipped = ids_and_widths(False, 0), ids_and_widths(True, 0)
  n_flipped = 0
  for p, f in zip(plain, flipped):
    np.testing.assert_array_equal(p["image_id"], f["image_id"])
    for i in range(2):
      if not np.array_equal(p["image"][i], f["image"][i]):
        n_flipped += 1
        np.testing.assert_array_equal(f["image"][i, :48, :48], p["image"][i, :48, 47::-1])
        np.testing.assert_array_equal(f["gt_masks"][i], p["gt_masks"][i][:, :, ::-1])
  assert 0 < n_flipped < 16


def test_eval_iterator_pads_and_shards(shapes_data):
  config = _config(shapes_data)
  batches = list(data.eval_iterator(config))            # 4 validation images, batch 3
  ids = np.concatenate([b["image_id"] for b in batches]).tolist()
  assert len(batches) == 2 and sorted(i for i in ids if i > 0) == [1, 2, 3, 4]
  assert ids.count(-1) == 2 and all(_spec(b) == _spec(batches[0]) for b in batches)
  pad = np.concatenate([b["gt_valid"] for b in batches])[np.asarray(ids) == -1]
  assert not pad.any()
  config.data.eval_batch_size = 2
  shards = [[i for b in data.eval_iterator(config, "train", shard_index=k, shard_count=2)
             for i in b["image_id"].tolist()] for k in range(2)]
  assert len(shards[0]) == len(shards[1]) and sorted(shards[0] + shards[1]) == list(range(1, 9))


def test_class_info_and_config_errors(shapes_data):
  assert data.class_info(_config(shapes_data)) == (["circle", "square", "triangle", "bar"], [1, 2, 3, 4])
  with pytest.raises(ValueError, match="max_size"):
    data.train_iterator(_config(shapes_data, max_size=80))
  with pytest.raises(ValueError, match="divisible by shard_count"):
    data.train_iterator(_config(shapes_data, batch_size=3), shard_count=2)
  with pytest.raises(ValueError, match="split 'test'"):
    data.eval_iterator(_config(shapes_data), "test")
  with pytest.raises(ValueError, match="no prepared dataset.*prepare"):
    data.train_iterator(_config(shapes_data, name="nope"))


def test_reading_does_not_import_tensorflow(shapes_data):
  data_dir, name, _ = shapes_data
  code = ("import sys\nfrom mrcnn_jax.data import pipeline as data\nfrom mrcnn_jax.configs import shapes_tiny\n"
          "c = shapes_tiny.get_config()\n"
          f"c.data.update(dict(name={name!r}, data_dir={data_dir!r}, canvas=64, min_size=64, max_size=64))\n"
          "next(data.train_iterator(c)); list(data.eval_iterator(c))\n"
          "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]


def test_worker_processes_resume_too(shapes_data):
  config = _config(shapes_data, num_workers=1)
  it = data.train_iterator(config)
  next(it)
  state = it.get_state()
  want = next(it)
  resumed = data.train_iterator(config)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["image"], want["image"])


def _grouped_config(folder_data):
  """The tiny COCO folder (40x50, 60x40 and 30x30 images) on a landscape and a portrait canvas."""
  data_dir, name, _, _ = folder_data
  config = shapes_tiny.get_config()
  config.num_classes = 0
  config.data.update(dict(name=name, data_dir=data_dir, canvases=((32, 64), (64, 32)), min_size=32,
                          max_size=64, max_instances=4, gt_mask_size=8, batch_size=2, eval_batch_size=2,
                          train_split="validation", num_workers=0))
  return config


def test_batches_are_grouped_by_canvas_and_resume_exactly(folder_data):
  config = _grouped_config(folder_data)
  it = data.train_iterator(config)
  batches = [next(it) for _ in range(6)]
  shapes = {b["image"].shape for b in batches}
  assert shapes == {(2, 32, 64, 3), (2, 64, 32, 3)}     # one canvas per batch, both used
  for b in batches:
    data.batch_spec.check_batch(b, config)
    assert (b["image_size"] <= b["image"].shape[1:3]).all()
  state = it.get_state()
  expected = [next(it) for _ in range(5)]
  resumed = data.train_iterator(config)
  resumed.set_state(state)
  for want, got in zip(expected, [next(resumed) for _ in range(5)]):
    for key in want:
      np.testing.assert_array_equal(want[key], got[key])


def test_grouped_batches_resume_through_the_trainers_checkpoints(folder_data, tmp_path):
  """The grouped iterator's state saved and restored the way training does it (Orbax, grain's handler,
  beside a train state): the batches after the restore are those the saved run went on with."""
  from mrcnn_jax.train.checkpoint import Checkpointer
  from mrcnn_jax.train.mesh import make_mesh

  config = _grouped_config(folder_data)
  it = data.train_iterator(config)
  for _ in range(3):
    next(it)                                   # a buffer holds one example: the state must keep it
  saver = Checkpointer(str(tmp_path), keep=1)
  saver.save(3, {"step": np.int32(3)}, it)
  saver.wait()
  expected = [next(it) for _ in range(5)]
  saver.close()

  resumed = data.train_iterator(config)
  loader = Checkpointer(str(tmp_path), keep=1)
  state = loader.restore({"step": np.int32(0)}, resumed, make_mesh())
  loader.close()
  assert int(state["step"]) == 3
  for want, got in zip(expected, [next(resumed) for _ in range(5)]):
    for key in want:
      np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def test_grouped_evaluation_reads_every_image_once(folder_data):
  batches = list(data.eval_iterator(_grouped_config(folder_data)))
  ids = np.concatenate([b["image_id"] for b in batches])
  assert sorted(ids[ids >= 0].tolist()) == [101, 102, 103]
  assert all(len({im.shape for im in b["image"]}) == 1 for b in batches)


def test_several_canvases_refuse_several_processes(folder_data):
  with pytest.raises(data.UserError, match="canvases"):
    data.train_iterator(_grouped_config(folder_data), shard_index=0, shard_count=2)
