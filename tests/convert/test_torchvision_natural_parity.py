"""Parity with torchvision 0.28's maskrcnn_resnet50_fpn at its default transform (800 / 1333) on five
non-square photographs at their own sizes (``scripts/oracles/tv_natural_oracle.py``'s outputs in
$MRCNN_TV_ORACLE/natural; skipped when they are not made): the checkpoint converted with its default
config (no overrides) resizes in the graph as torchvision does (bilinear on the normalised float image,
floor sizes), pads to a multiple of 32 with zeros, and gives torchvision's detections in the original
pixels. The suite runs chelsea (800x1202 on 800x1216) and the portrait crop (1163x800 on 1184x800);
``MRCNN_PARITY_ALL=1`` runs all five.
"""

import os

import numpy as np
import oracles
import pytest

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.data.resize import resize_and_pad

IMAGES = range(5) if os.environ.get("MRCNN_PARITY_ALL") else (1, 4)


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
  """(model, torchvision's outputs, our detections per image index)."""
  outdir = oracles.torchvision_outputs()
  natural_dir = os.path.join(outdir, "natural")
  if not os.path.exists(os.path.join(natural_dir, "tv_outputs.npz")):
    pytest.skip(f"no natural-size torchvision oracle in {natural_dir}: make it with "
                "<torch venv>/bin/python scripts/oracles/tv_natural_oracle.py")
  workdir = str(tmp_path_factory.mktemp("tv_natural") / "workdir")
  assert convert_cli(["torchvision", os.path.join(outdir, "tv_maskrcnn_r50_fpn_random.pth"), "--out", workdir]) == 0
  model = mrcnn_jax.load(workdir)
  ref = np.load(os.path.join(natural_dir, "tv_outputs.npz"))
  detections = mrcnn_jax.predict(model, [ref[f"img{i}_image"] for i in IMAGES])
  return model, ref, dict(zip(IMAGES, (detections.image(b) for b in range(len(IMAGES)))))


@pytest.mark.parametrize("i", range(5))
def test_torchvisions_resized_and_padded_sizes(natural, i):
  model, ref, _ = natural
  example = resize_and_pad(ref[f"img{i}_image"], model.config.data)
  assert tuple(example["image_size"]) == tuple(ref[f"img{i}_resized_hw"])
  assert example["canvas"] == tuple(ref[f"img{i}_padded_hw"])


@pytest.mark.parametrize("i", IMAGES)
def test_detections_match_torchvision_at_natural_size(natural, i):
  _, ref, det = natural
  width = ref[f"img{i}_image"].shape[1]
  masks = np.unpackbits(ref[f"img{i}_masks"], axis=-1)[..., :width].astype(bool)
  matched, score, box, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_labels"],
                                                    ref[f"img{i}_scores"], masks, det[i])
  measured = (f"image {i}: {matched:.0%} of torchvision's {len(ref[f'img{i}_scores'])} detections matched "
              f"({len(det[i]['scores'])} ours), score |d| <= {score:.1e}, box |d| <= {box:.1e} px, "
              f"mean mask IoU {mask_iou:.3f}")
  assert matched >= 0.95 and score < 1e-3 and mask_iou >= 0.9, measured
