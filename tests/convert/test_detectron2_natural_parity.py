"""Parity with the real Detectron2 v0.6 at its default test size (800 / 1333) on five non-square
photographs at their own sizes, landscape and portrait (``../shared/oracles/detectron2_r50_fpn/natural``):
the seed-0 checkpoint converted with its default config (no overrides) must resize each photograph to
Detectron2's size, bit for bit, run it on Detectron2's padded canvas (the resized image rounded up to a
multiple of 32, zeros after normalising) and give Detectron2's detections in the original pixels.
The suite runs a landscape and a portrait photograph (chelsea 300x451 on 800x1216, astronaut columns
512x352 on 1184x800: two compiles); ``MRCNN_PARITY_ALL=1`` runs all five in one ``predict`` call (three
canvases: 800x1216 x3, 800x1088, 1184x800).
"""

import hashlib
import json
import os

import numpy as np
import oracles
import pytest

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.data.resize import resize_and_pad

NATURAL = os.path.join(oracles.DETECTRON2, "natural")
IMAGES = range(5) if os.environ.get("MRCNN_PARITY_ALL") else (1, 4)


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
  """(model, Detectron2's outputs, its meta.json, our detections of the five photographs)."""
  weights = oracles.d2_weights()
  tmp = tmp_path_factory.mktemp("d2_natural")
  weights.write(0, tmp / "model_final.pkl")
  assert convert_cli(["detectron2", str(tmp / "model_final.pkl"), "--out", str(tmp / "workdir")]) == 0
  (tmp / "model_final.pkl").unlink()  # 170 MB
  model = mrcnn_jax.load(str(tmp / "workdir"))
  ref = np.load(os.path.join(NATURAL, "outputs_seed0.npz"))
  with open(os.path.join(NATURAL, "meta.json")) as f:
    meta = json.load(f)
  detections = mrcnn_jax.predict(model, [ref[f"img{i}_image"] for i in IMAGES])
  return model, ref, meta, dict(zip(IMAGES, (detections.image(b) for b in range(len(IMAGES)))))


@pytest.mark.parametrize("i", range(5))
def test_resized_bit_for_bit_onto_detectron2s_canvas(natural, i):
  """Detectron2's resized size and pixels (its sha256 of the BGR uint8 image), and its padded size."""
  model, ref, meta, _ = natural
  example = resize_and_pad(ref[f"img{i}_image"], model.config.data)
  h, w = example["image_size"]
  assert (h, w) == tuple(ref[f"img{i}_resized_hw"]) and example["image"].shape[:2] == tuple(ref[f"img{i}_padded_hw"])
  bgr = np.ascontiguousarray(example["image"][:h, :w, ::-1])
  assert hashlib.sha256(bgr.tobytes()).hexdigest() == meta["per_image"][i]["resized_bgr_uint8_sha256"]


@pytest.mark.parametrize("i", IMAGES)
def test_detections_match_detectron2_at_natural_size(natural, i):
  _, ref, _, det = natural
  width = ref[f"img{i}_image"].shape[1]
  masks = np.unpackbits(ref[f"img{i}_masks_packed"], axis=-1)[..., :width].astype(bool)
  matched, score, box, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_classes"] + 1,  # 0-based
                                                    ref[f"img{i}_scores"], masks, det[i])
  measured = (f"image {i}: {matched:.0%} of Detectron2's {len(ref[f'img{i}_scores'])} detections matched "
              f"({len(det[i]['scores'])} ours), score |d| <= {score:.1e}, box |d| <= {box:.1e} px, "
              f"mean mask IoU {mask_iou:.3f}")
  assert matched >= 0.95 and score < 1e-3 and mask_iou >= 0.95, measured
