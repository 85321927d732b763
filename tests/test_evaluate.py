"""COCO evaluation: the pure pieces (GT and detections -> pycocotools) and evaluate() end to end."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax import coco, evaluate, postprocess
from mrcnn_jax.configs import keypoints_tiny, shapes_tiny
from mrcnn_jax.data import features, figures, prepare, shapes


NAMES, IDS = list(shapes.CLASS_NAMES), [3, 7, 12, 20]   # non-contiguous dataset ids


def _records(n=6, size=64):
  records = []
  for i in range(n):
    image, masks, labels, _ = shapes.render_scene(np.random.default_rng(i), size)
    records.append({"image": None, "height": size, "width": size, "image_id": 100 + i,
                    "boxes": np.stack([shapes.mask_box(m) for m in masks]),
                    "classes": labels.astype(np.int32) + 1, "crowd": np.zeros(len(masks), bool),
                    "area": masks.sum(axis=(1, 2)).astype(np.float32),
                    "masks": [features.encode_mask(m) for m in masks], "full_masks": masks})
  records[0]["crowd"][0] = True                             # a crowd region: never a false negative
  return records


def _results(records, shift=0):
  results = []
  for r in records:
    masks = np.roll(r["full_masks"], shift, axis=2)
    keep = ~r["crowd"]
    results += coco.detections_to_coco(r["image_id"], r["boxes"] + [shift, 0, shift, 0],
                                           np.linspace(1, 0.5, len(keep)), r["classes"], keep, IDS,
                                           masks)
  return results


def test_gt_as_detections_scores_perfect_and_shifted_scores_lower():
  records = _records()
  gt = coco.gt_to_coco(records, NAMES, IDS)
  assert {c["id"] for c in gt["categories"]} == set(IDS) and len(gt["images"]) == 6
  assert sum(a["iscrowd"] for a in gt["annotations"]) == 1
  perfect = coco.coco_metrics(gt, _results(records))
  assert set(perfect) == {f"{t}/{m}" for t in ("bbox", "segm") for m in coco.METRICS}
  assert perfect["bbox/AP"] == pytest.approx(1.0) and perfect["segm/AP"] == pytest.approx(1.0)
  assert perfect["bbox/AP50"] == pytest.approx(1.0) and perfect["segm/AP75"] == pytest.approx(1.0)
  shifted = coco.coco_metrics(gt, _results(records, shift=3))
  assert shifted["bbox/AP"] < 0.9 and shifted["segm/AP"] < 0.9
  assert shifted["bbox/AP50"] <= perfect["bbox/AP50"]


def test_results_use_dataset_category_ids_and_xywh_boxes():
  out = coco.detections_to_coco(5, np.array([[1., 2., 11., 22.], [0, 0, 1, 1]]), [0.9, 0.1],
                                    [2, 4], [True, False], IDS)
  assert out == [{"image_id": 5, "category_id": 7, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.9}]


def test_no_detections_and_box_only_metrics():
  gt = coco.gt_to_coco(_records(2), NAMES, IDS)
  assert coco.coco_metrics(gt, [], ("bbox",)) == {f"bbox/{m}": 0.0 for m in coco.METRICS}


def test_box_only_dataset():
  records = _records(3)
  for r in records:
    r["masks"] = None
  gt = coco.gt_to_coco(records, NAMES, IDS)
  assert all("segmentation" not in a for a in gt["annotations"])
  results = [{k: v for k, v in r.items() if k != "segmentation"} for r in _results(records)]
  metrics = coco.coco_metrics(gt, results, ("bbox",))
  assert list(metrics) == [f"bbox/{m}" for m in coco.METRICS]
  assert metrics["bbox/AP"] == pytest.approx(1.0)


def test_to_original_scales_each_axis_by_original_over_resized_and_clips():
  boxes, masks = postprocess.to_original(np.array([[10., 20., 30., 400.]]), None, (200, 24), (100, 12))
  np.testing.assert_allclose(boxes, [[5, 10, 12, 100]])
  assert masks is None
  # Detectron2's detector_postprocess: a 300 x 451 photograph resized to 800 x 1203 maps x by 451 / 1203
  # and y by 300 / 800, not both by one scale.
  boxes, _ = postprocess.to_original(np.array([[1203., 800., 1203., 800.]]), None, (800, 1203), (300, 451))
  np.testing.assert_allclose(boxes, [[451, 300, 451, 300]], rtol=1e-6)


def test_to_original_pastes_masks_at_the_original_size():
  boxes, masks = postprocess.to_original(np.array([[4., 6., 20., 30.]]), np.ones((1, 28, 28)), (140, 100), (70, 50))
  assert masks.shape == (1, 70, 50) and masks.dtype == bool
  expected = np.zeros((70, 50), bool)
  expected[3:15, 2:10] = True  # the box /2: x 2..10, y 3..15
  np.testing.assert_array_equal(masks[0], expected)


class _FakeModel:
  """Detects one box (the top-left quarter of the image) of class 1 with a full mask."""

  def detect(self, image, image_size):
    b = image.shape[0]
    h, w = image_size[:, 0].astype(jnp.float32), image_size[:, 1].astype(jnp.float32)
    boxes = jnp.stack([jnp.zeros(b), jnp.zeros(b), w / 2, h / 2], -1)[:, None]
    return {"boxes": boxes, "scores": jnp.full((b, 1), 0.8), "classes": jnp.ones((b, 1), jnp.int32),
            "masks": jnp.ones((b, 1, 28, 28)), "valid": jnp.ones((b, 1), bool)}


def test_evaluate_end_to_end_writes_results(tmp_path):
  data_dir = str(tmp_path / "tfds")
  name, _, _ = prepare.prepare_shapes(data_dir, seed=1, num_train=2, num_val=3, image_size=48)
  config = shapes_tiny.get_config()
  config.data.update(dict(name=name, data_dir=data_dir, canvas=64, min_size=64, max_size=64,
                          eval_batch_size=2))
  workdir = str(tmp_path / "work")
  metrics = evaluate.evaluate(_FakeModel(), config, workdir)
  assert set(metrics) == {f"{t}/{m}" for t in ("bbox", "segm") for m in coco.METRICS}
  assert all(-1.0 <= v <= 1.0 for v in metrics.values())
  with open(os.path.join(workdir, "results_validation.json")) as f:
    results = json.load(f)
  assert len(results) == 3 and {r["image_id"] for r in results} == {1, 2, 3}
  for r in results:                                       # mapped back to the 48 px originals
    np.testing.assert_allclose(r["bbox"], [0, 0, 24, 24], atol=1e-4)
    assert r["segmentation"]["size"] == [48, 48] and r["category_id"] == 1
  assert os.path.exists(os.path.join(workdir, "metrics_validation.json"))


def test_cli_user_error_is_one_line_and_exit_2(tmp_path, capsys):
  assert evaluate.main(["--workdir", str(tmp_path)]) == 2
  assert capsys.readouterr().err == (f"error: {tmp_path / 'config.json'} not found: is {str(tmp_path)!r} "
                                     "a training workdir?\n")


def _figure_records(n=6, size=96):
  records = []
  for i in range(n):
    _, masks, kps, _ = figures.render_scene(np.random.default_rng(i), size)
    records.append({"height": size, "width": size, "image_id": 1 + i,
                    "boxes": np.stack([shapes.mask_box(m) for m in masks]),
                    "classes": np.ones(len(masks), np.int32), "crowd": np.zeros(len(masks), bool),
                    "area": masks.sum(axis=(1, 2)).astype(np.float32), "masks": None, "keypoints": kps})
  return records


def _keypoint_metrics(records, shift):
  results = []
  for r in records:
    detected = r["keypoints"] + [shift, 0, 0]
    detected[..., 2] = 1.0                                   # a score per keypoint
    results += coco.detections_to_coco(r["image_id"], r["boxes"], np.ones(len(r["boxes"])), r["classes"],
                                       np.ones(len(r["boxes"]), bool), [1], keypoints=detected)
  gt = coco.gt_to_coco(records, ["figure"], [1])
  return coco.coco_metrics(gt, results, ("bbox", "keypoints"), keypoint_sigmas=figures.SIGMAS)


def test_keypoints_perfect_score_one_and_shifted_lower():
  records = _figure_records()
  perfect = _keypoint_metrics(records, 0.0)
  assert {k for k in perfect if k.startswith("keypoints/")} == {f"keypoints/{m}" for m in coco.KEYPOINT_METRICS}
  assert perfect["keypoints/AP"] == pytest.approx(1.0) and perfect["bbox/AP"] == pytest.approx(1.0)
  one, three = _keypoint_metrics(records, 1.0), _keypoint_metrics(records, 3.0)
  assert 1.0 > one["keypoints/AP"] > three["keypoints/AP"] and three["keypoints/AP50"] < 1.0
  assert one["bbox/AP"] == pytest.approx(1.0)                # the boxes did not move


def test_keypoints_are_coco_pixel_indices_in_the_coco_dicts():
  """Continuous (x, y) -> COCO's integer pixel indices (x - 0.5), unlabelled ones (0, 0, 0)."""
  kps = np.asarray([[[10.5, 8.5, 2], [0, 0, 0]]], np.float32)
  record = {"height": 20, "width": 20, "image_id": 1, "boxes": np.asarray([[5, 5, 15, 15]], np.float32),
            "classes": np.ones(1, np.int32), "crowd": np.zeros(1, bool), "area": np.ones(1, np.float32),
            "masks": None, "keypoints": kps}
  ann = coco.gt_to_coco([record], ["p"], [1])["annotations"][0]
  assert ann["keypoints"] == [10, 8, 2, 0, 0, 0] and ann["num_keypoints"] == 1
  result = coco.detections_to_coco(1, record["boxes"], [0.9], [1], [True], [1],
                                   keypoints=np.asarray([[[10.5, 8.5, 0.7], [3.0, 4.0, 0.2]]]))[0]
  assert result["keypoints"] == pytest.approx([10, 8, 0.7, 2.5, 3.5, 0.2])


class _FakeKeypointModel(_FakeModel):
  """_FakeModel's detection with all 11 keypoints at the image's centre, score 1."""

  def detect(self, image, image_size):
    out = super().detect(image, image_size)
    centre = jnp.concatenate([image_size[:, ::-1] / 2, jnp.ones((len(image), 1))], -1)
    out["keypoints"] = jnp.broadcast_to(centre[:, None, None], (len(image), 1, 11, 3))
    return out


def test_evaluate_reports_keypoint_ap_for_a_keypoint_model(tmp_path):
  data_dir = str(tmp_path / "tfds")
  name, _, _ = prepare.prepare_keypoints(data_dir, seed=1, num_train=2, num_val=3, image_size=48)
  config = keypoints_tiny.get_config()
  config.data.update(dict(name=name, data_dir=data_dir, canvas=64, min_size=64, max_size=64,
                          eval_batch_size=2))
  metrics = evaluate.evaluate(_FakeKeypointModel(), config, str(tmp_path / "work"))
  assert set(metrics) == ({f"{t}/{m}" for t in ("bbox", "segm") for m in coco.METRICS}
                          | {f"keypoints/{m}" for m in coco.KEYPOINT_METRICS})
  with open(tmp_path / "work" / "results_validation.json") as f:
    results = json.load(f)
  for r in results:                                       # the 48 px originals' centre, as pixel indices
    assert r["keypoints"] == pytest.approx([23.5, 23.5, 1.0] * 11)
