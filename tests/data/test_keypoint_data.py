"""Keypoints in the data: COCO person_keypoints folders, metadata (flip map, sigmas), flip and resize."""

import copy

import ml_collections
import numpy as np
import pytest

from mrcnn_jax.configs import keypoints_tiny
from mrcnn_jax.data import coco_json, figures, keypoints, preprocess, sources
from mrcnn_jax.data.coco_classes import COCO_KEYPOINT_FLIP_MAP, COCO_KEYPOINT_NAMES, COCO_KEYPOINT_SIGMAS
from mrcnn_jax.data import pipeline as data


def test_flip_map_pairs_left_and_right_names():
  assert keypoints.flip_map(COCO_KEYPOINT_NAMES) == COCO_KEYPOINT_FLIP_MAP == tuple((i, i + 1) for i in range(1, 17, 2))
  assert keypoints.flip_map(("head", "right_hand", "left_hand", "left_eye")) == ((2, 1),)


def test_person_keypoints_folder_reads_back(keypoint_folder_data):
  data_dir, name, flat = keypoint_folder_data
  builder = sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))
  assert sources.num_keypoints(builder) == 17
  info = sources.keypoint_info(builder)
  assert info["keypoint_names"] == list(COCO_KEYPOINT_NAMES)
  assert info["keypoint_flip_map"] == [[i, i + 1] for i in range(1, 17, 2)]
  assert info["keypoint_sigmas"] == pytest.approx(COCO_KEYPOINT_SIGMAS)
  assert info["keypoint_skeleton"][:2] == [[15, 13], [13, 11]]      # COCO's 1-based [16, 14], [14, 12]
  record = sources.to_record(sources.data_source(builder, "validation")[0], with_masks=True)
  kps = record["keypoints"]
  assert kps.shape == (3, 17, 3) and kps.dtype == np.float32
  np.testing.assert_array_equal(kps[0, [0, 5, 6]], [[10.5, 8.5, 2], [6.5, 15.5, 1], [49.5, 15.5, 2]])
  assert not kps[0, [1, 2, 3, 4, 7]].any() and not kps[1:].any()   # unlabelled and crowd: zeros
  assert record["crowd"].tolist() == [False, False, True]


def test_datasets_without_keypoints_have_none(folder_data):
  builder = sources.open_builder(ml_collections.ConfigDict({"name": folder_data[1], "data_dir": folder_data[0]}))
  assert sources.num_keypoints(builder) == 0 and sources.keypoint_info(builder) == {}
  assert sources.to_record(sources.data_source(builder, "validation")[0], True)["keypoints"] is None


def _valid():
  return {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 5}],
          "categories": [{"id": 1, "name": "p", "keypoints": ["left_a", "right_a"], "skeleton": [[1, 2]]}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2],
                           "segmentation": [[0, 0, 2, 0, 2, 2]], "keypoints": [1, 1, 2, 0, 0, 0]}]}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][0].update(keypoints=[1, 1, 2]),
     r"annotations\[0\]\.keypoints: expected 6 numbers"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 1, 3, 0, 0, 0]), r"annotations\[0\]\.keypoints: .*v in"),
    (lambda d: d["categories"][0].update(keypoints=[]), r"categories\[0\]\.keypoints: expected a non-empty"),
    (lambda d: d["categories"][0].update(skeleton=[[1, 3]]), r"categories\[0\]\.skeleton\[0\]"),
    (lambda d: d["categories"].append({"id": 2, "name": "q", "keypoints": ["x"]}), r"different keypoint names"),
    (lambda d: d["categories"][0].pop("keypoints"), r"annotations\[0\]\.keypoints: .*declares no keypoint"),
])
def test_malformed_keypoints_name_the_field(edit, message):
  data = copy.deepcopy(_valid())
  coco_json.validate(data)
  edit(data)
  with pytest.raises(ValueError, match=message):
    coco_json.validate(data)


def test_hflip_mirrors_x_and_swaps_pairs():
  kps = np.asarray([[[2.0, 3.0, 2], [9.5, 4.0, 1], [0, 0, 0]]], np.float32)  # left_a, right_a, unlabelled
  flipped = keypoints.hflip(kps, 10, ((0, 1),))
  np.testing.assert_array_equal(flipped, [[[0.5, 4.0, 1], [8.0, 3.0, 2], [0, 0, 0]]])
  np.testing.assert_array_equal(keypoints.hflip(flipped, 10, ((0, 1),)), kps)


def test_resize_scales_and_unlabels_keypoints_outside():
  kps = np.asarray([[10.0, 20.0, 2], [50.0, 40.0, 2], [50.5, 1.0, 1], [-0.1, 3.0, 2]], np.float32)
  np.testing.assert_array_equal(keypoints.resize(kps, (40, 50), height=20, width=25),
                                [[5, 10, 2], [25, 20, 2], [0, 0, 0], [0, 0, 0]])


def _record(kps, crowd):
  """A 40 x 50 record whose instances are the boxes of their keypoints (a pair left_a, right_a)."""
  boxes = np.asarray([[2, 2, 50, 30], [0, 0, 10, 10], [5, 5, 20, 20]], np.float32)[:len(kps)]
  return {"image": np.zeros((40, 50, 3), np.uint8), "image_id": 1, "boxes": boxes,
          "classes": np.ones(len(kps), np.int32), "crowd": np.asarray(crowd), "area": np.ones(len(kps), np.float32),
          "masks": None, "keypoints": np.asarray(kps, np.float32)}


@pytest.mark.parametrize("flip", [False, True])
def test_preprocess_scales_and_flips_keypoints(flip):
  """Scale 2 (40 x 50 -> 80 x 100): right_a on the image's right edge (x = 50) goes to x = 100, and
  flipped to x = 0 as the mirrored figure's left_a; left_a (5.5, 3, occluded) goes to (11, 6) and
  flipped to x = 100 - 11 = 89 as its right_a. The crowd instance sorts last."""
  record = _record([[[0, 0, 0], [0, 0, 0]], [[5.5, 3, 1], [50, 10, 2]]], crowd=[True, False])
  example = preprocess.preprocess(record, canvases=((128, 128),), min_size=80, max_size=100,
                                  max_instances=3, mask_size=4, flip=flip, num_keypoints=2,
                                  flip_map=((0, 1),))
  assert example["gt_keypoints"].shape == (3, 2, 3) and example["gt_keypoints"].dtype == np.float32
  want = [[0, 20, 2], [89, 6, 1]] if flip else [[11, 6, 1], [100, 20, 2]]
  np.testing.assert_array_equal(example["gt_keypoints"][0], want)
  assert not example["gt_keypoints"][1:].any()          # the crowd region (no keypoints), padding


def test_an_image_without_instances_has_only_padding_keypoints():
  """The dataset gives an image without figures keypoints of shape [0] (no K): blank slots, no error."""
  record = dict(_record([[[1, 1, 2], [2, 2, 2]]], [False]), boxes=np.zeros((0, 4)), classes=[], crowd=[],
                masks=None, keypoints=np.zeros((0,), np.float32))
  example = preprocess.preprocess(record, canvases=((64, 64),), min_size=40, max_size=50, max_instances=2,
                                  mask_size=4, flip=True, num_keypoints=2, flip_map=((0, 1),))
  assert example["gt_keypoints"].shape == (2, 2, 3) and not example["gt_keypoints"].any()
  assert not example["gt_valid"].any()


def test_batches_without_keypoints_have_no_field():
  example = preprocess.preprocess(_record([[[1, 1, 2], [2, 2, 2]]], [False]), canvases=((64, 64),),
                                  min_size=40, max_size=50, max_instances=2, mask_size=4)
  assert "gt_keypoints" not in example


def _figures_config(figures_data, **keypoint):
  data_dir, name, _ = figures_data
  config = keypoints_tiny.get_config()
  config.data.update(dict(name=name, data_dir=data_dir, canvas=64, min_size=64, max_size=64,
                          max_instances=6, gt_mask_size=16, batch_size=2, eval_batch_size=3))
  config.model.keypoint.update(keypoint)
  return config


def test_pipeline_batches_carry_the_datasets_keypoints(figures_data):
  config = _figures_config(figures_data)
  batch = next(data.train_iterator(config))
  assert batch["gt_keypoints"].shape == (2, 6, 11, 3)
  assert not batch["gt_keypoints"][~batch["gt_valid"]].any()
  source = sources.data_source(sources.open_builder(config.data), "validation")
  records = {r["image_id"]: r for r in (sources.to_record(source[i], False) for i in range(len(source)))}
  batches = list(data.eval_iterator(config))
  for batch in batches:
    for b, image_id in enumerate(batch["image_id"]):
      if image_id > 0:
        want = records[image_id]["keypoints"]
        np.testing.assert_array_equal(batch["gt_keypoints"][b, :len(want)], want)  # 64 px: scale 1
      else:
        assert batch["gt_keypoints"][b].shape == (6, 11, 3) and not batch["gt_keypoints"][b].any()


def test_resolve_fills_the_keypoint_fields_and_refuses_another_count(figures_data):
  config = _figures_config(figures_data)
  data.resolve_classes(config)
  assert config.data.keypoint_names == figures.KEYPOINT_NAMES
  assert config.data.keypoint_flip_map == ((2, 3), (4, 5), (7, 8), (9, 10))
  assert config.data.keypoint_sigmas == figures.SIGMAS
  assert config.data.keypoint_skeleton == figures.SKELETON
  with pytest.raises(ValueError, match="num_keypoints=17 but dataset .* has 11 keypoints"):
    data.resolve_classes(_figures_config(figures_data, num_keypoints=17))
  config = _figures_config(figures_data)
  config.data.keypoint_sigmas = (0.1,)
  with pytest.raises(ValueError, match="keypoint_sigmas has 1 entries but there are 11"):
    data.resolve_keypoints(config)


def test_a_keypoint_model_on_a_dataset_without_keypoints_is_refused(shapes_data):
  config = keypoints_tiny.get_config()
  config.data.update(dict(name=shapes_data[1], data_dir=shapes_data[0]))
  with pytest.raises(ValueError, match="num_keypoints=11 but dataset .* has 0 keypoints.*set it to 0"):
    data.train_iterator(config)
