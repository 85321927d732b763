"""Synthetic shapes: scene rendering invariants and the prepared mrcnn_shapes dataset read back."""

import os
import re

import ml_collections
import numpy as np
import pytest

from mrcnn_jax.data import features, prepare, shapes, sources


def test_render_is_deterministic_and_masks_are_exact():
  for seed in range(20):
    image, masks, labels, dropped = shapes.render_scene(np.random.default_rng(seed), 64)
    image2, masks2, labels2, _ = shapes.render_scene(np.random.default_rng(seed), 64)
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(masks, masks2)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert masks.shape == (len(labels), 64, 64) and masks.dtype == bool
    assert set(labels.tolist()) <= {0, 1, 2, 3} and dropped >= 0
    assert (masks.sum(axis=0) <= 1).all()          # occlusion leaves the visible parts disjoint
    assert (masks.sum(axis=(1, 2)) >= 6).all()      # tiny / hidden instances were dropped
    np.testing.assert_array_equal(labels, labels2)


def test_all_classes_and_small_objects_occur():
  labels, areas, bar_widths = [], [], []
  for seed in range(60):
    _, masks, lab, _ = shapes.render_scene(np.random.default_rng(seed), 128)
    labels += lab.tolist()
    areas += masks.sum(axis=(1, 2)).tolist()
    bar_widths += [int(m.sum(axis=0).max()) for m, l in zip(masks, lab) if shapes.CLASS_NAMES[l] == "bar"]
  assert set(labels) == {0, 1, 2, 3}
  assert min(areas) < 32 ** 2 / 16                 # COCO "small" objects, well below 32x32 px
  assert bar_widths and min(bar_widths) <= 8       # bars are thin: a few px across


def test_mask_box_is_tight():
  mask = np.zeros((10, 12), bool)
  mask[2:5, 3:9] = True
  np.testing.assert_array_equal(shapes.mask_box(mask), [3, 2, 9, 5])


def test_prepared_dataset_reads_back(shapes_data):
  data_dir, name, stats = shapes_data
  builder = sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))
  assert sources.class_info(builder) == (list(shapes.CLASS_NAMES), [1, 2, 3, 4])
  for split, count in (("train", 8), ("validation", 4)):
    source = sources.data_source(builder, split)
    records = [sources.to_record(source[i], True) for i in range(len(source))]
    assert len(records) == count == stats[split]["images"]
    assert sum(len(r["classes"]) for r in records) == stats[split]["instances"]
    assert sorted(r["image_id"] for r in records) == list(range(1, count + 1))
    split_code = {"train": 0, "validation": 1}[split]
    for r in records:
      rng = np.random.default_rng([3, split_code, r["image_id"] - 1])
      image, masks, labels, _ = shapes.render_scene(rng, 64)
      np.testing.assert_array_equal(r["image"], image)            # PNG is lossless
      np.testing.assert_array_equal(r["classes"], labels + 1)
      for counts, mask, box in zip(r["masks"], masks, r["boxes"]):
        np.testing.assert_array_equal(features.decode_mask(counts, 64, 64), mask)
        np.testing.assert_allclose(box, shapes.mask_box(mask), atol=1e-4)
      np.testing.assert_array_equal(r["area"], masks.sum(axis=(1, 2)))


def test_prepare_cli_on_existing_dataset(shapes_data, capsys):
  data_dir, name, _ = shapes_data
  assert prepare.main(["shapes", "--data_dir", data_dir, "--seed", "3", "--num_train", "8",
                       "--num_val", "4", "--image_size", "64"]) == 0
  out = capsys.readouterr().out
  assert f"config.data.name = {name!r}" in out and "already prepared" in out
  assert "config.num_classes = 4, config.class_names = ('circle', 'square', 'triangle', 'bar')" in out


@pytest.mark.parametrize("kind", ["shapes", "keypoints", "folder", "coco", "export"])
def test_prepare_help_describes_every_flag(kind, capsys):
  with pytest.raises(SystemExit) as exit_info:
    prepare.main([kind, "--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  entries = re.findall(r"^  (-\S+.*(?:\n {3,}[^-\s].*)*)", out, re.M)  # a flag + its wrapped lines
  assert "--data_dir" in " ".join(entries)
  for entry in entries:            # a description beside the flag names and metavars
    words = [w for w in entry.split()[1:] if not w.isupper() and not w.startswith(("[", "-"))]
    assert len(words) >= 2, entry
  if kind == "shapes":
    assert "(default: 2000)" in out


def test_export_says_when_the_split_has_fewer_images(shapes_data, tmp_path, capsys):
  data_dir, name, _ = shapes_data
  assert prepare.main(["export", "--name", name, "--data_dir", data_dir, "--num", "12",
                       "--out", str(tmp_path)]) == 0
  out, err = capsys.readouterr()
  assert len(out.split()) == 4 == len(os.listdir(tmp_path))
  assert "split 'validation' has 4 images: exported 4 of the 12 asked for" in err
