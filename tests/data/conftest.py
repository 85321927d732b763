"""Tiny prepared datasets shared by the data tests (built once per test process)."""

import pytest
from tiny_coco import write_coco_folder, write_person_keypoints_folder

from mrcnn_jax.data import prepare


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory):
  """(data_dir, data.name, per-split stats) of mrcnn_shapes with 8 train / 4 val images of 64 px."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  name, stats, _ = prepare.prepare_shapes(data_dir, seed=3, num_train=8, num_val=4, image_size=64)
  return data_dir, name, stats


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory):
  """(data_dir, name, {split: Report}, expected) of a COCO-format folder built with --skip_bad_images."""
  root = str(tmp_path_factory.mktemp("coco_folder_src"))
  ann, images, expected = write_coco_folder(root)
  data_dir = str(tmp_path_factory.mktemp("tfds_folder"))
  name, reports, _ = prepare.prepare_folder("tiny", data_dir, [f"validation={ann}"],
                                            [f"validation={images}"], skip_bad_images=True)
  return data_dir, name, reports, expected


@pytest.fixture(scope="session")
def keypoint_folder_data(tmp_path_factory):
  """(data_dir, name, first person's flat COCO keypoints) of a prepared person_keypoints folder."""
  ann, images, flat = write_person_keypoints_folder(str(tmp_path_factory.mktemp("kp_src")))
  data_dir = str(tmp_path_factory.mktemp("tfds_kp"))
  name, _, _ = prepare.prepare_folder("persons", data_dir, [f"validation={ann}"], [f"validation={images}"])
  return data_dir, name, flat


@pytest.fixture(scope="session")
def figures_data(tmp_path_factory):
  """(data_dir, data.name, per-split stats) of mrcnn_figures with 6 train / 4 val images of 64 px."""
  data_dir = str(tmp_path_factory.mktemp("tfds_figures"))
  name, stats, _ = prepare.prepare_keypoints(data_dir, seed=3, num_train=6, num_val=4, image_size=64)
  return data_dir, name, stats
