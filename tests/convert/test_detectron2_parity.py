"""Parity with the real Detectron2 v0.6 on three of its model-zoo Mask R-CNNs: R50-FPN
(``../shared/oracles/detectron2_r50_fpn``), R50-C4 and X101-32x8d-FPN (``../shared/oracles/detectron2_zoo``;
see the READMEs there). Each oracle's seed-0 weights go through ``python -m mrcnn_jax.convert detectron2``
and ``mrcnn_jax.load``, and every stage is compared with Detectron2's outputs: the backbone's features
(FPN levels, or C4's res4), RPN proposals and box-head outputs on Detectron2's proposals of image 0, then
each image's detections (same class, box IoU > 0.98), scores and pasted masks, at the oracles' 512x512
canvas. One predict call per model: R50-FPN's on the three photographs; R50-C4's and X101-FPN's on image 0
alone unless ``MRCNN_PARITY_ALL=1`` (X101 costs 2.5 times R50-FPN).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import oracles
import pytest

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.ops.boxes import box_iou

SIZE = 512  # the oracles' images; Detectron2 ran without resizing (meta.json: MIN/MAX_SIZE_TEST 512)
TOP_PROPOSALS = 200  # the box head is checked on these (all 1000 would cost a fourth RoI-head forward)
# The backbone outputs each oracle kept for image 0 (img0_<name>_first16), in our RPN's feature order.
FEATURES = {"r50_fpn": tuple(f"fpn_p{level}" for level in range(2, 7)), "r50_c4": ("res4",),
            "x101_fpn": tuple(f"fpn_p{level}" for level in range(2, 7))}
ALL = (0, 1, 2)
IMAGES = {"r50_fpn": ALL, **dict.fromkeys(("r50_c4", "x101_fpn"), ALL if os.environ.get("MRCNN_PARITY_ALL") else (0,))}


@pytest.fixture(scope="module", params=sorted(FEATURES))
def parity(request, tmp_path_factory):
  """(arch, model, Detectron2's outputs, our detections of IMAGES[arch] by image, image 0's stages)."""
  arch = request.param
  tmp = tmp_path_factory.mktemp(arch)
  outputs = oracles.write_detectron2(arch, 0, str(tmp / "model_final.pkl"))
  sizes = [f"--config.data.{field}={SIZE}" for field in ("canvas", "min_size", "max_size")]
  assert convert_cli(["detectron2", str(tmp / "model_final.pkl"), "--out", str(tmp / "workdir"), *sizes]) == 0
  (tmp / "model_final.pkl").unlink()  # 140 to 430 MB
  model = mrcnn_jax.load(str(tmp / "workdir"))
  ref = np.load(outputs)
  images = [ref["images"][i] for i in IMAGES[arch]]
  proposals = jnp.asarray(ref["img0_rpn_proposals"][:TOP_PROPOSALS])
  stages = jax.device_get(oracles.image0_stages(model, jnp.asarray(images[:1]), proposals))
  detections = mrcnn_jax.predict(model, images, batch_size=len(images))
  return arch, model, ref, {i: detections.image(b) for b, i in enumerate(IMAGES[arch])}, stages


def test_converted_workdir_records_its_source(parity):
  config = parity[1].config
  assert config.pretrained.source == "detectron2" and config.pretrained.file.endswith("model_final.pkl")
  assert len(config.pretrained.sha256) == 16 and config.num_classes == 5


def test_backbone_features(parity):
  arch, _, ref, _, (features, _, _, _) = parity
  assert len(features) == len(FEATURES[arch])
  for name, ours in zip(FEATURES[arch], features):
    theirs = ref[f"img0_{name}_first16"]                                   # [16,H,W]
    error = np.abs(ours.transpose(2, 0, 1) - theirs).max() / np.abs(theirs).max()
    print(f"{arch} {name}: {error:.1e} of the range")
    assert error < 1e-3, f"{arch} {name}: max |ours - Detectron2| / max |Detectron2| = {error:.1e}"


def test_rpn_proposals_are_detectron2s(parity):
  arch, _, ref, _, (_, proposals, _, _) = parity
  theirs = ref["img0_rpn_proposals"]
  best = np.asarray(box_iou(jnp.asarray(theirs), jnp.asarray(proposals))).max(1)
  assert (best > 0.9999).all(), f"{arch}: {(best <= 0.9999).sum()} of Detectron2's proposals have no twin in ours"
  # Same order (descending objectness) but for neighbours whose logits tie.
  in_place = np.abs(proposals[:500] - theirs[:500]).max(-1) < 1e-2
  print(f"{arch} proposals: {in_place.mean():.1%} of the first 500 in Detectron2's order")
  assert in_place.mean() >= 0.99, f"{arch}: only {in_place.mean():.1%} of the first 500 in Detectron2's order"


def test_box_head_on_detectron2s_proposals(parity):
  """Class logits and deltas on Detectron2's first TOP_PROPOSALS proposals (our RoIAlign with its
  adaptive grid, the box head or C4's res5, the predictor's class order) to 1e-3 of their range."""
  arch, _, ref, _, (_, _, cls, deltas) = parity
  ours_cls = np.roll(cls, -1, axis=1)                                       # background last, as Detectron2
  for name, ours, theirs in (("logits", ours_cls, ref["img0_box_cls_logits"][:TOP_PROPOSALS]),
                             ("deltas", deltas.reshape(TOP_PROPOSALS, -1), ref["img0_box_deltas"][:TOP_PROPOSALS])):
    error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"{arch} box-head {name}: {error:.1e} of the range")
    assert error < 1e-3, f"{arch} box-head {name}: max |ours - Detectron2| / max |Detectron2| = {error:.1e}"


@pytest.mark.parametrize("i", ALL)
def test_detections_match_detectron2(parity, i):
  arch, _, ref, det, _ = parity
  if i not in det:
    pytest.skip(f"{arch}: image {i} runs with MRCNN_PARITY_ALL=1")
  masks = np.unpackbits(ref[f"img{i}_masks_packed"], axis=-1)[..., :SIZE].astype(bool)
  matched, score, _, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_classes"] + 1,  # 0-based
                                                  ref[f"img{i}_scores"], masks, det[i])
  measured = (f"{arch} image {i}: {matched:.0%} of Detectron2's {len(ref[f'img{i}_scores'])} detections matched "
              f"({len(det[i]['scores'])} ours), score |d| <= {score:.1e}, mean mask IoU {mask_iou:.4f}")
  print(measured)
  assert matched >= 0.95 and score < 1e-3 and mask_iou >= 0.95, measured
