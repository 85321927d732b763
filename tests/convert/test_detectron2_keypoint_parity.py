"""Keypoint R-CNN parity with the real Detectron2 v0.6 (``../shared/oracles/detectron2_kp_r50_fpn``):
keypoint_rcnn_R_50_FPN_3x on seeded, calibrated random weights, converted with its default config (no
overrides: Detectron2's test resize and padding), on photographs at their own sizes. Detectron2's boxes,
scores and keypoints in original pixels must come out (>= 95 % of its detections matched per image, box
IoU > 0.98, score difference < 1e-3; on those, >= 95 % of keypoints within 1 px with score differences
< 1e-3); our keypoint head on Detectron2's boxes gives its heatmap logits (stored as float16); and our
static decode of its own heatmaps gives its keypoints. The suite runs chelsea (800x1216 canvas) and the
portrait astronaut crop (1184x800); ``MRCNN_PARITY_ALL=1`` runs all six.
"""

import os

import numpy as np
import oracles
import pytest
from flax import nnx

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.data.resize import resize_and_pad
from mrcnn_jax.ops import heatmaps_to_keypoints
from mrcnn_jax.postprocess import keypoints_to_original

IMAGES = range(6) if os.environ.get("MRCNN_PARITY_ALL") else (1, 4)
HEATMAP_DETECTIONS = 4  # of image IMAGES[0], through our head on Detectron2's boxes


@nnx.jit
def _heatmaps(model, image, image_size, boxes):
  _, pool_features = model.features(image, image_size)
  return model.roi_heads.keypoint_logits(pool_features, boxes)


@pytest.fixture(scope="module")
def reference():
  """Detectron2's outputs (``outputs_seed0.npz``), or a skip."""
  path = os.path.join(oracles.DETECTRON2_KEYPOINTS, "outputs_seed0.npz")
  if not os.path.exists(path):
    pytest.skip(f"no Detectron2 keypoint oracle at {path} (set MRCNN_ORACLES)")
  return np.load(path)


@pytest.fixture(scope="module")
def parity(tmp_path_factory, reference):
  """(model, Detectron2's outputs, our ``Detections.image`` per image index)."""
  weights = oracles.d2_weights(oracles.DETECTRON2_KEYPOINTS, "d2_kp_weights")
  tmp = tmp_path_factory.mktemp("d2_keypoints")
  weights.write(0, str(tmp / "model_final.pkl"))
  assert convert_cli(["detectron2", str(tmp / "model_final.pkl"), "--out", str(tmp / "workdir")]) == 0
  (tmp / "model_final.pkl").unlink()  # 237 MB
  model = mrcnn_jax.load(str(tmp / "workdir"))
  detections = mrcnn_jax.predict(model, [reference[f"img{i}_image"] for i in IMAGES])
  return model, reference, dict(zip(IMAGES, (detections.image(b) for b in range(len(IMAGES)))))


def test_converted_config_is_detectron2s_keypoint_model(parity):
  config = parity[0].config
  assert config.class_names == ("person",) and not config.model.mask_on
  assert config.model.keypoint.num_keypoints == 17 and config.model.keypoint.num_convs == 8
  assert len(config.data.keypoint_names) == 17 and len(config.data.keypoint_flip_map) == 8


@pytest.mark.parametrize("i", IMAGES)
def test_detections_and_keypoints_match_detectron2(parity, i):
  _, ref, det = parity
  matched, score, close, measured = oracles.keypoint_agreement(ref[f"img{i}_boxes"], ref[f"img{i}_scores"],
                                                               ref[f"img{i}_keypoints"], det[i])
  print(f"image {i}: {measured}")
  assert matched >= 0.95 and score < 1e-3 and close >= 0.95, measured


def test_keypoint_head_gives_detectron2s_heatmaps_on_its_boxes(parity):
  model, ref, _ = parity
  i = IMAGES[0]
  example = resize_and_pad(ref[f"img{i}_image"], model.config.data)
  boxes = ref[f"img{i}_boxes_resized"][:HEATMAP_DETECTIONS]
  ours = np.asarray(_heatmaps(model, example["image"][None], example["image_size"][None], boxes[None]))
  want = ref[f"img{i}_heatmaps"][:HEATMAP_DETECTIONS].astype(np.float32).transpose(0, 2, 3, 1)
  scale = np.abs(want).max()
  print(f"heatmaps of {HEATMAP_DETECTIONS} detections: max |d| {np.abs(ours - want).max():.2e} (logits up to {scale:.1f})")
  np.testing.assert_allclose(ours, want, atol=2e-2)


@pytest.mark.parametrize("i", IMAGES)
def test_static_decode_of_detectron2s_heatmaps_gives_its_keypoints(reference, i):
  """Detectron2's own float16-stored logits and boxes through ``heatmaps_to_keypoints`` (its float32
  logits decode to its keypoints bit for bit, the oracle's meta.json says; float16 moves near-ties)."""
  ref = reference
  heatmaps = ref[f"img{i}_heatmaps"].astype(np.float32).transpose(0, 2, 3, 1)
  canvas = ref[f"img{i}_padded_hw"]
  decoded = heatmaps_to_keypoints(heatmaps, ref[f"img{i}_boxes_resized"], max_side=int(max(canvas)))
  ours = keypoints_to_original(decoded, ref[f"img{i}_resized_hw"], ref[f"img{i}_image"].shape[:2])
  want = ref[f"img{i}_keypoints"]
  same = np.linalg.norm(ours[..., :2] - want[..., :2], axis=-1) < 1e-3
  assert same.mean() >= 0.99, f"image {i}: {same.mean():.2%} of keypoints at Detectron2's place"
  np.testing.assert_allclose(ours[..., 2][same], want[..., 2][same], rtol=2e-2)
