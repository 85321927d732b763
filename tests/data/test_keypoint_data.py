"""Keypoints in the data: COCO person_keypoints folders, metadata (flip map, sigmas), flip and resize."""

import copy

import ml_collections
import numpy as np
import pytest

from mrcnn_jax.data import coco_json, keypoints, sources


def test_flip_map_pairs_left_and_right_names():
  assert keypoints.flip_map(keypoints.COCO_PERSON_KEYPOINTS) == tuple((i, i + 1) for i in range(1, 17, 2))
  assert keypoints.flip_map(("head", "right_hand", "left_hand", "left_eye")) == ((2, 1),)


def test_person_keypoints_folder_reads_back(keypoint_folder_data):
  data_dir, name, flat = keypoint_folder_data
  builder = sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))
  assert sources.num_keypoints(builder) == 17
  info = sources.keypoint_info(builder)
  assert info["keypoint_names"] == list(keypoints.COCO_PERSON_KEYPOINTS)
  assert info["keypoint_flip_map"] == [[i, i + 1] for i in range(1, 17, 2)]
  assert info["keypoint_sigmas"] == pytest.approx(keypoints.COCO_PERSON_SIGMAS)
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
  np.testing.assert_array_equal(keypoints.resize(kps, 0.5, height=20, width=25),
                                [[5, 10, 2], [25, 20, 2], [0, 0, 0], [0, 0, 0]])
