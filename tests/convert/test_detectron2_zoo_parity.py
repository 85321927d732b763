"""Parity with two more of Detectron2 v0.6's model-zoo Mask R-CNNs (``../shared/oracles/detectron2_zoo``,
see its README): R50-C4 (RPN on res4, ``Res5ROIHeads``, 14x14 masks) and X101-32x8d-FPN (ResNeXt). Each
oracle's seed-0 weights go through ``python -m mrcnn_jax.convert detectron2`` and ``mrcnn_jax.load``;
image 0's stages (backbone features, RPN proposals, the box head on Detectron2's proposals) and every
image's detections (same class, box IoU > 0.98), scores and pasted masks are compared. One predict call
(the three 512x512 photographs in one batch) per model.
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

SIZE = 512  # the oracles' images; Detectron2 ran without resizing (INPUT.MIN/MAX_SIZE_TEST 512)
TOP_PROPOSALS = 200  # the box head is checked on these
# The backbone outputs the oracle kept for image 0 (img0_<name>_first16), in our RPN's feature order.
FEATURES = {"r50_c4": ("res4",), "x101_fpn": tuple(f"fpn_p{level}" for level in range(2, 7))}


@pytest.fixture(scope="module", params=sorted(FEATURES))
def parity(request, tmp_path_factory):
  """(arch, Detectron2's outputs, our detections, image 0's stages) of one zoo oracle."""
  arch = request.param
  weights = oracles.d2_zoo_weights()
  tmp = tmp_path_factory.mktemp(arch)
  weights.write(arch, 0, str(tmp / "model_final.pkl"))
  sizes = [f"--config.data.{field}={SIZE}" for field in ("canvas", "min_size", "max_size")]
  assert convert_cli(["detectron2", str(tmp / "model_final.pkl"), "--out", str(tmp / "workdir"), *sizes]) == 0
  (tmp / "model_final.pkl").unlink()  # 140 / 430 MB
  model = mrcnn_jax.load(str(tmp / "workdir"))
  ref = np.load(os.path.join(oracles.DETECTRON2_ZOO, arch, "outputs_seed0.npz"))
  images = list(ref["images"])
  proposals = jnp.asarray(ref["img0_rpn_proposals"][:TOP_PROPOSALS])
  stages = jax.device_get(oracles.image0_stages(model, jnp.asarray(images[:1]), proposals))
  detections = mrcnn_jax.predict(model, images, batch_size=len(images))
  return arch, ref, detections, stages


def test_backbone_features(parity):
  arch, ref, _, (features, _, _, _) = parity
  assert len(features) == len(FEATURES[arch])
  for name, ours in zip(FEATURES[arch], features):
    theirs = ref[f"img0_{name}_first16"]                                   # [16,H,W]
    error = np.abs(ours.transpose(2, 0, 1) - theirs).max() / np.abs(theirs).max()
    print(f"{arch} {name}: {error:.1e} of the range")
    assert error < 1e-3, f"{arch} {name}: max |ours - Detectron2| / max |Detectron2| = {error:.1e}"


def test_rpn_proposals_are_detectron2s(parity):
  arch, ref, _, (_, proposals, _, _) = parity
  theirs = ref["img0_rpn_proposals"]
  best = np.asarray(box_iou(jnp.asarray(theirs), jnp.asarray(proposals))).max(1)
  assert (best > 0.9999).all(), f"{arch}: {(best <= 0.9999).sum()} of Detectron2's proposals have no twin in ours"
  print(f"{arch} proposals: the first 500 in Detectron2's order to {np.abs(proposals[:500] - theirs[:500]).max():.1e} px")
  assert np.abs(proposals[:500] - theirs[:500]).max() < 1e-2                # same order but for near ties


def test_box_head_on_detectron2s_proposals(parity):
  arch, ref, _, (_, _, cls, deltas) = parity
  ours_cls = np.roll(cls, -1, axis=1)                                       # background last, as Detectron2
  for name, ours, theirs in (("logits", ours_cls, ref["img0_box_cls_logits"][:TOP_PROPOSALS]),
                             ("deltas", deltas.reshape(TOP_PROPOSALS, -1), ref["img0_box_deltas"][:TOP_PROPOSALS])):
    error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"{arch} box-head {name}: {error:.1e} of the range")
    assert error < 1e-3, f"{arch} box-head {name}: max |ours - Detectron2| / max |Detectron2| = {error:.1e}"


@pytest.mark.parametrize("i", [0, 1, 2])
def test_detections_match_detectron2(parity, i):
  arch, ref, det, _ = parity
  masks = np.unpackbits(ref[f"img{i}_masks_packed"], axis=-1)[..., :SIZE].astype(bool)
  matched, score, _, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_classes"] + 1,  # 0-based
                                                  ref[f"img{i}_scores"], masks, det.image(i))
  measured = (f"{arch} image {i}: {matched:.0%} of Detectron2's {len(ref[f'img{i}_scores'])} detections matched "
              f"({det.num_detections[i]} ours), score |d| <= {score:.1e}, mean mask IoU {mask_iou:.4f}")
  print(measured)
  assert matched >= 0.95 and score < 1e-3 and mask_iou >= 0.95, measured
