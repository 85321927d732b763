"""Per-example preprocessing: resize, box-cropped GT masks (alignment), flip, padding, memory."""

import numpy as np
import pytest

from mrcnn_jax import configs
from mrcnn_jax.data import batch_spec, features, preprocess, resize, shapes
from mrcnn_jax.ops.masks import paste_masks


def _record(image, masks, classes, crowd=None):
  """A preprocess record from full-image bool masks (boxes = tight mask boxes)."""
  n = len(masks)
  return {"image": image, "image_id": 7,
          "boxes": np.stack([shapes.mask_box(m) for m in masks]) if n else np.zeros((0, 4), np.float32),
          "classes": np.asarray(classes, np.int32), "crowd": np.zeros(n, bool) if crowd is None else crowd,
          "area": masks.sum(axis=(1, 2)).astype(np.float32),
          "masks": [features.encode_mask(m) for m in masks]}


def data_config(**fields):
  """config.data with ``fields`` set (the square canvas, the sizes)."""
  return configs.override(configs.get("base"), {f"data.{k}": v for k, v in fields.items()}).data


def _scene(seed, size=64):
  image, masks, labels, _ = shapes.render_scene(np.random.default_rng(seed), size)
  return _record(image, masks, labels + 1)


def test_resize_scale():
  assert resize.resize_scale(480, 640, 800, 1333) == pytest.approx(800 / 480)
  assert resize.resize_scale(100, 1000, 800, 1333) == pytest.approx(1.333)  # long side caps


def test_resize_and_pad_gives_the_pipelines_image_fields():
  """What predict feeds the model equals what the training pipeline makes of the same image."""
  image = np.random.default_rng(1).integers(0, 255, (50, 100, 3), dtype=np.uint8)
  record = _record(image, np.zeros((0, 50, 100), bool), [])
  example = preprocess.preprocess(record, canvases=((96, 96),), min_size=64, max_size=96, max_instances=2, mask_size=8)
  fields = resize.resize_and_pad(image, data_config(canvas=96, min_size=64, max_size=96))
  assert fields.pop("canvas") == (96, 96)
  assert set(fields) == {"image", "image_size", "scale", "original_size"}
  for name, value in fields.items():
    np.testing.assert_array_equal(value, example[name], err_msg=name)
    assert value.dtype == example[name].dtype, name


def test_crop_mask_lines_up_with_paste_masks():
  """Cropped-then-pasted masks reproduce the original; a half-pixel offset visibly does not."""
  aligned, shifted, bars = [], [], []
  for seed in range(12):
    _, masks, labels, _ = shapes.render_scene(np.random.default_rng(seed), 96)
    for mask, label in zip(masks, labels):
      box = shapes.mask_box(mask)
      for out, offset in ((aligned, 0.0), (shifted, 0.5)):
        crop = preprocess.crop_mask(mask.astype(np.uint8), box + offset, 64)
        pasted = np.asarray(paste_masks(crop[None].astype(np.float32), box[None], 96, 96))[0]
        out.append((pasted & mask).sum() / (pasted | mask).sum())
      if shapes.CLASS_NAMES[label] == "bar":
        bars.append(aligned[-1])
  assert np.mean(aligned) > 0.95 and bars and np.mean(bars) > 0.9
  assert np.mean(shifted) < np.mean(aligned) - 0.05


def test_output_shapes_dtypes_and_resize():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (50, 100, 3), dtype=np.uint8)
  masks = np.zeros((2, 50, 100), bool)
  masks[0, 10:20, 30:60] = True
  masks[1, 0:50, 90:100] = True
  out = preprocess.preprocess(_record(image, masks, [2, 4]), canvases=((96, 96),), min_size=64, max_size=96,
                              max_instances=5, mask_size=16)
  expected = batch_spec.blank_example((96, 96), 5, 16)
  assert {k: (v.shape, v.dtype) for k, v in out.items()} == {
      k: (v.shape, v.dtype) for k, v in expected.items()}
  assert out["scale"] == pytest.approx(0.96) and out["image_size"].tolist() == [48, 96]
  assert out["original_size"].tolist() == [50, 100] and out["image_id"] == 7
  np.testing.assert_allclose(out["gt_boxes"][:2], np.asarray([[30, 10, 60, 20], [90, 0, 100, 50]]) * 0.96,
                             rtol=1e-6)
  assert out["gt_classes"].tolist() == [2, 4, 0, 0, 0] and out["gt_valid"].tolist() == [1, 1, 0, 0, 0]
  assert out["gt_masks"][:2].all() and not out["gt_masks"][2:].any()   # rectangles fill their box
  assert not out["image"][48:].any() and out["image"][:48].any()


def test_flip_moves_image_boxes_and_masks_together():
  record = _scene(5)
  kwargs = dict(canvases=((80, 80),), min_size=72, max_size=80, max_instances=8, mask_size=32)
  plain = preprocess.preprocess(record, flip=False, **kwargs)
  flipped = preprocess.preprocess(record, flip=True, **kwargs)
  h, w = plain["image_size"]
  np.testing.assert_array_equal(flipped["image"][:h, :w], plain["image"][:h, ::-1][:, -w:])
  n = int(plain["gt_valid"].sum())
  np.testing.assert_allclose(flipped["gt_boxes"][:n, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [w, 0, w, 0],
                             plain["gt_boxes"][:n], atol=1e-5)
  np.testing.assert_array_equal(flipped["gt_masks"], plain["gt_masks"][:, :, ::-1])
  # The pasted flipped masks are the mirror images of the pasted plain ones.
  paste = lambda ex: np.asarray(paste_masks(ex["gt_masks"][:n].astype(np.float32), ex["gt_boxes"][:n],
                                            int(h), int(w)))
  np.testing.assert_array_equal(paste(flipped), paste(plain)[:, :, ::-1])


def test_crowd_dropped_first_and_empty_boxes_skipped():
  image = np.zeros((40, 40, 3), np.uint8)
  masks = np.zeros((5, 40, 40), bool)
  for i in range(5):
    masks[i, 2 * i:2 * i + 5, 3:30] = True
  record = _record(image, masks, [1, 2, 3, 4, 1], crowd=np.array([True, False, False, True, False]))
  record["boxes"][2] = [10, 10, 10, 20]                            # zero width: never valid
  out = preprocess.preprocess(record, canvases=((40, 40),), min_size=40, max_size=40, max_instances=3,
                              mask_size=8)
  assert out["gt_classes"].tolist() == [2, 1, 1]                    # non-crowd 1, 4 then crowd 0
  assert out["gt_crowd"].tolist() == [False, False, True] and out["gt_valid"].all()


def test_boxes_only_dataset_gets_box_masks():
  record = _scene(1)
  record["masks"] = None
  out = preprocess.preprocess(record, canvases=((64, 64),), min_size=64, max_size=64, max_instances=8, mask_size=8)
  valid = out["gt_valid"]
  assert out["gt_masks"][valid].all() and not out["gt_masks"][~valid].any()


def test_gt_mask_memory_is_bounded_by_instances():
  """COCO-sized canvas 1024 with 100 instances at Mg = 64: 100 * 64 * 64 = 409,600 mask bytes."""
  rng = np.random.default_rng(0)
  masks = np.zeros((100, 600, 800), bool)
  for i in range(100):
    x, y = rng.integers(0, 700), rng.integers(0, 500)
    masks[i, y:y + rng.integers(2, 100), x:x + rng.integers(2, 100)] = True
  record = _record(np.zeros((600, 800, 3), np.uint8), masks, np.ones(100, np.int32))
  out = preprocess.preprocess(record, canvases=((1024, 1024),), min_size=800, max_size=1024, max_instances=100,
                              mask_size=64)
  assert out["gt_valid"].all()
  assert out["gt_masks"].nbytes == 409_600
  assert out["image"].nbytes == 1024 * 1024 * 3
