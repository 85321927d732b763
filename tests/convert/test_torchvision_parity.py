"""Parity with torchvision 0.28's maskrcnn_resnet50_fpn (v1: the outputs of
``../shared/oracles/torchvision_r50_fpn/tv_oracle.py``, see the README there) and maskrcnn_resnet50_fpn_v2
(v2: those of scripts/oracles/tv_v2_oracle.py); each skipped when its outputs are not made. The checkpoint goes through ``python -m mrcnn_jax.convert torchvision`` and ``mrcnn_jax.load``,
``mrcnn_jax.predict`` runs on its three 512x512 photographs (nothing resized or padded), and every stage
is compared with torchvision's: FPN features, anchors, RPN proposals, box-head outputs on its proposals
and mask probabilities on its detections (image 0), then each image's detections (same class, box IoU >
0.98), scores, boxes and pasted masks. One compiled forward for the stages, one for the detections.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import oracles
import pytest
from flax import nnx
from PIL import Image
from tv_state_dicts import tv_shapes, tv_v2_shapes

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.model.mask_head import mask_probabilities

SIZE = 512        # the oracle's images; torchvision ran with min_size = max_size = 512: no resize, no padding
FPN_NAMES = ("0", "1", "2", "3", "pool")  # torchvision's names of P2..P6
STATE_DICTS = {"v1": tv_shapes, "v2": tv_v2_shapes}  # the synthetic state dicts of test_torchvision.py


@nnx.jit
def _stages(model, image, proposals, boxes, classes):
  """Image 0's FPN levels [H_l,W_l,C] (P2..P6), proposals [1000,4] and valid [1000], box-head logits
  [P,K+1] / deltas [P,K,4] on torchvision's proposals [P,4], mask probabilities [D,28,28] on its
  detections (boxes [D,4], classes [D])."""
  rpn_features, pool_features = model.features(image)
  logits, deltas = model.proposal_generator(rpn_features)
  ours, valid = model.proposal_generator.proposals(logits, deltas, jnp.full((1, 2), SIZE), (SIZE, SIZE),
                                                     training=False)
  cls, box = model.roi_heads.box_logits(pool_features, proposals[None])
  masks = mask_probabilities(model.roi_heads.mask_logits(pool_features, boxes[None]), classes,
                             model.config.model.mask_loss)
  return [f[0] for f in rpn_features], ours[0], valid[0], cls[0], box[0], masks


@pytest.fixture(scope="module", params=sorted(STATE_DICTS))
def parity(request, tmp_path_factory):
  """(model, meta.json, torchvision's outputs, our detections, image 0's stages) of oracle v1 or v2."""
  outdir = oracles.torchvision_outputs(request.param)
  with open(os.path.join(outdir, "meta.json")) as f:
    meta = json.load(f)
  workdir = str(tmp_path_factory.mktemp("tv") / "workdir")
  sizes = [f"--config.data.{field}={SIZE}" for field in ("canvas", "min_size", "max_size")]
  assert convert_cli(["torchvision", os.path.join(outdir, meta["checkpoint"]["file"]), "--out", workdir, *sizes]) == 0
  model = mrcnn_jax.load(workdir)
  ref = np.load(os.path.join(outdir, "tv_outputs.npz"))
  images = [np.asarray(Image.open(os.path.join(outdir, im["file"])).convert("RGB")) for im in meta["images"]]
  stages = jax.device_get(_stages(model, jnp.asarray(images[:1]), jnp.asarray(ref["rpn_proposals0"]),
                                  jnp.asarray(ref["img0_boxes"]), jnp.asarray(ref["img0_labels"], jnp.int32)))
  detections = mrcnn_jax.predict(model, images, batch_size=len(images))
  return model, meta, ref, detections, stages


def relative_error(ours, theirs):
  return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_converted_workdir_records_its_source(parity):
  model, meta, *_ = parity
  config = model.config
  assert config.pretrained.source == "torchvision" and config.pretrained.file.endswith(meta["checkpoint"]["file"])
  assert meta["checkpoint"]["sha256"].startswith(config.pretrained.sha256) and config.num_classes == 4


def test_synthetic_state_dicts_have_torchvisions_names_and_shapes(parity):
  """test_torchvision.py's state dicts are torchvision's: the oracle's checkpoint has those tensors."""
  version = "v2" if parity[0].config.model.roi.num_convs else "v1"  # as the converter detected it
  assert parity[1]["checkpoint"]["shapes"] == {name: list(shape) for name, shape in STATE_DICTS[version](5).items()}


def test_fpn_features(parity):
  _, _, ref, _, (features, *_) = parity
  for name, ours in zip(FPN_NAMES, features):
    error = relative_error(ours.transpose(2, 0, 1), ref[f"fpn_{name}"][0])
    print(f"FPN {name}: {error:.1e} of the range")
    assert error < 1e-3, f"FPN {name}: max |ours - torchvision| / max |torchvision| = {error:.1e}"


def test_anchors_are_torchvisions(parity):
  """Same order (level, y, x, ratio) and the same integer-rounded cells."""
  np.testing.assert_array_equal(np.concatenate(parity[0].proposal_generator.anchors((SIZE, SIZE))), parity[2]["anchors0"])


def test_rpn_proposals_are_torchvisions(parity):
  """The same 1000 boxes (to 1e-2 px: IoU would be too strict for the slivers clipped at the image's
  edge), in the same order but for neighbours whose objectness (torchvision sorts by its sigmoid, which
  ties near 0 and 1) ties to ~1e-6: each twin within 2 places of torchvision's."""
  _, _, ref, _, (_, proposals, valid, _, _, _) = parity
  theirs = ref["rpn_proposals0"]
  assert valid.sum() == len(theirs)
  distance = np.abs(theirs[:, None] - proposals[None, valid]).max(-1)        # [theirs, ours] px
  assert (distance.min(1) < 1e-2).all(), f"{(distance.min(1) >= 1e-2).sum()} of torchvision's proposals have no twin"
  shift = np.abs(distance.argmin(1) - np.arange(len(theirs)))
  print(f"proposals: {(shift > 0).sum()} of {len(theirs)} out of torchvision's place, by at most {shift.max()}")
  assert shift.max() <= 2, f"a proposal {shift.max()} places from its place in torchvision's order"


def test_box_head_on_torchvisions_proposals(parity):
  """Class logits and deltas on all of torchvision's proposals: RoIAlign (aligned=False), fc6's input
  order, the predictor without torchvision's background box rows."""
  _, _, ref, _, (_, _, _, cls, deltas, _) = parity
  theirs_deltas = ref["box_deltas0"].reshape(len(cls), -1, 4)[:, 1:]
  for name, ours, theirs in (("logits", cls, ref["box_logits0"]), ("deltas", deltas, theirs_deltas)):
    error = relative_error(ours, theirs)
    print(f"box-head {name}: {error:.1e} of the range")
    assert error < 1e-3, f"box-head {name}: max |ours - torchvision| / max |torchvision| = {error:.1e}"


def test_mask_probabilities_on_torchvisions_detections(parity):
  _, _, ref, _, (*_, masks) = parity
  error = np.abs(masks - ref["img0_mask28"]).max()
  print(f"28x28 mask probabilities: {error:.1e}")
  assert error < 1e-3, f"28x28 mask probabilities: max |ours - torchvision| = {error:.1e}"


@pytest.mark.parametrize("i", [0, 1, 2])
def test_detections_match_torchvision(parity, i):
  _, _, ref, det, _ = parity
  matched, score, box, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_labels"], ref[f"img{i}_scores"],
                                                    ref[f"img{i}_masks"] > 0.5, det.image(i))
  measured = (f"image {i}: {matched:.0%} of torchvision's {len(ref[f'img{i}_scores'])} detections matched "
              f"({det.num_detections[i]} ours), score |d| <= {score:.1e}, box |d| <= {box:.3f} px, "
              f"mean mask IoU {mask_iou:.4f}")
  print(measured)
  assert matched >= 0.95 and score < 1e-3 and box < 0.1 and mask_iou >= 0.99, measured
