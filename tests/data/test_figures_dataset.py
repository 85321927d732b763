"""Synthetic stick figures: keypoints on the figure, visibility from occlusion, the prepared dataset."""

import ml_collections
import numpy as np

from mrcnn_jax.data import features, figures, keypoints, prepare, sources


def test_render_is_deterministic_and_keypoints_lie_on_their_figure():
  counts = np.zeros(3, int)
  for seed in range(30):
    image, masks, kps, dropped = figures.render_scene(np.random.default_rng(seed), 96)
    image2, _, kps2, _ = figures.render_scene(np.random.default_rng(seed), 96)
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(kps, kps2)
    assert image.shape == (96, 96, 3) and masks.shape == (len(kps), 96, 96) and dropped >= 0
    assert kps.shape == (len(masks), 11, 3) and kps.dtype == np.float32
    assert (masks.sum(axis=0) <= 1).all()
    for mask, kp in zip(masks, kps):
      visible = kp[kp[:, 2] == 2]
      cells = np.floor(visible[:, :2]).astype(int)
      assert mask[cells[:, 1], cells[:, 0]].all()                # a visible keypoint shows its figure
      hidden = kp[kp[:, 2] == 1]
      cells = np.floor(hidden[:, :2]).astype(int)
      assert not mask[cells[:, 1], cells[:, 0]].any()            # an occluded one does not
      assert not kp[kp[:, 2] == 0].any()                         # unlabelled: (0, 0, 0)
    counts += np.bincount(kps[..., 2].astype(int).ravel(), minlength=3)
  assert counts.min() > 0 and counts[2] > counts[1]               # every visibility occurs


def test_upright_figures_have_their_left_limbs_on_the_right():
  for seed in range(20):
    pose = figures._pose(np.random.default_rng(seed))  # pylint: disable=protected-access
    for left, right in keypoints.flip_map(figures.KEYPOINT_NAMES):
      assert pose[left, 0] > 0 > pose[right, 0]


def test_prepared_dataset_reads_back(figures_data):
  data_dir, name, stats = figures_data
  builder = sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))
  assert sources.class_info(builder) == (["figure"], [1])
  info = sources.keypoint_info(builder)
  assert info["keypoint_names"] == list(figures.KEYPOINT_NAMES)
  assert info["keypoint_flip_map"] == [[2, 3], [4, 5], [7, 8], [9, 10]]
  assert info["keypoint_sigmas"] == list(figures.SIGMAS)
  source = sources.data_source(builder, "validation")
  records = [sources.to_record(source[i], True) for i in range(len(source))]
  assert len(records) == 4 == stats["validation"]["images"]
  for r in records:
    image, masks, kps, _ = figures.render_scene(np.random.default_rng([3, 1, r["image_id"] - 1]), 64)
    np.testing.assert_array_equal(r["image"], image)
    np.testing.assert_array_equal(r["keypoints"], kps)
    for counts, mask in zip(r["masks"], masks):
      np.testing.assert_array_equal(features.decode_mask(counts, 64, 64), mask)


def test_prepare_cli_prints_the_keypoints(figures_data, capsys):
  data_dir, name, _ = figures_data
  assert prepare.main(["keypoints", "--data_dir", data_dir, "--seed", "3", "--num_train", "6",
                       "--num_val", "4", "--image_size", "64"]) == 0
  out = capsys.readouterr().out
  assert f"config.data.name = {name!r}" in out and "config.model.keypoint.num_keypoints = 11" in out
