"""Parity with the real Detectron2 v0.6 on a second weight seed of each shared Detectron2 oracle's model:
R50-FPN at its default test size on non-square photographs (``natural``), the model zoo's R50-C4 and
X101-32x8d-FPN at 512 (``r50_c4``, ``x101_fpn``) and Keypoint R-CNN R50-FPN (``keypoints``).

The shared oracles hold seed 0. Detectron2's seed-1 detections are ``data/detectron2_seed1/<oracle>.npz``
(boxes, scores, classes and pasted masks or keypoints), made by scripts/oracles/d2_oracle.py with the same
Detectron2 source (which gives every shared seed-0 file back: ``meta.json`` there). The seed-1 weights come
from the shared generators, go through ``python -m mrcnn_jax.convert detectron2`` with the seed-0 tests'
settings and ``mrcnn_jax.predict`` runs on the shared photographs. Criteria as for seed 0: >= 95 % of
Detectron2's detections matched per image (same class, box IoU > 0.98), score differences < 1e-3, and mean
mask IoU >= 0.95 or >= 95 % of keypoints within 1 px (score difference < 1e-3). The suite runs one photograph
per model (the portrait crop, image 0, image 0, chelsea: one compile each); ``MRCNN_PARITY_ALL=1`` runs all.
"""

import os

import numpy as np
import oracles
import pytest

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli

SEED = 1
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "detectron2_seed1")
AT_512 = [f"--config.data.{field}=512" for field in ("canvas", "min_size", "max_size")]
ALL = os.environ.get("MRCNN_PARITY_ALL")
# oracle -> (shared folder of its seed-0 outputs and photographs, convert overrides, images the suite runs)
CASES = {
    "natural": (os.path.join(oracles.DETECTRON2, "natural"), [], range(5) if ALL else (4,)),
    "r50_c4": (os.path.join(oracles.DETECTRON2_ZOO, "r50_c4"), AT_512, range(3) if ALL else (0,)),
    "x101_fpn": (os.path.join(oracles.DETECTRON2_ZOO, "x101_fpn"), AT_512, range(3) if ALL else (0,)),
    "keypoints": (oracles.DETECTRON2_KEYPOINTS, [], range(6) if ALL else (1,)),
}


def _write_weights(oracle: str, path: str) -> None:
  if oracle == "natural":
    oracles.d2_weights().write(SEED, path)
  elif oracle == "keypoints":
    oracles.d2_weights(oracles.DETECTRON2_KEYPOINTS, "d2_kp_weights").write(SEED, path)
  else:
    oracles.write_detectron2(oracle, SEED, path)


def _photographs(folder: str, images) -> list[np.ndarray]:
  shared = os.path.join(folder, "outputs_seed0.npz")
  if not os.path.exists(shared):
    pytest.skip(f"no shared Detectron2 oracle at {shared} (set MRCNN_ORACLES)")
  shared = np.load(shared)
  return [shared["images"][i] if "images" in shared else shared[f"img{i}_image"] for i in images]


@pytest.fixture(scope="module", params=sorted(CASES))
def second_seed(request, tmp_path_factory):
  """(oracle, Detectron2's seed-1 outputs, photographs and our detections by image index)."""
  oracle = request.param
  folder, overrides, images = CASES[oracle]
  photos = _photographs(folder, images)
  tmp = tmp_path_factory.mktemp(f"{oracle}_seed{SEED}")
  _write_weights(oracle, str(tmp / "model_final.pkl"))
  assert convert_cli(["detectron2", str(tmp / "model_final.pkl"), "--out", str(tmp / "workdir"), *overrides]) == 0
  (tmp / "model_final.pkl").unlink()  # 140 to 430 MB
  model = mrcnn_jax.load(str(tmp / "workdir"))
  detections = mrcnn_jax.predict(model, photos)
  ours = {i: (photo, detections.image(b)) for b, (i, photo) in enumerate(zip(images, photos))}
  return oracle, np.load(os.path.join(DATA, f"{oracle}.npz")), ours


def test_detections_match_detectron2_on_a_second_seed(second_seed):
  oracle, ref, ours = second_seed
  failures = []
  for i, (photo, det) in ours.items():
    if oracle == "keypoints":
      matched, score, close, measured = oracles.keypoint_agreement(
          ref[f"img{i}_boxes"], ref[f"img{i}_scores"], ref[f"img{i}_keypoints"], det)
      good = matched >= 0.95 and score < 1e-3 and close >= 0.95
    else:
      masks = np.unpackbits(ref[f"img{i}_masks_packed"], axis=-1)[..., :photo.shape[1]].astype(bool)
      matched, score, _, mask_iou = oracles.agreement(ref[f"img{i}_boxes"], ref[f"img{i}_classes"] + 1,  # 0-based
                                                      ref[f"img{i}_scores"], masks, det)
      measured = (f"{matched:.0%} of Detectron2's {len(ref[f'img{i}_scores'])} detections matched "
                  f"({len(det['scores'])} ours), score |d| <= {score:.1e}, mean mask IoU {mask_iou:.4f}")
      good = matched >= 0.95 and score < 1e-3 and mask_iou >= 0.95
    print(f"{oracle} seed {SEED} image {i}: {measured}")
    if not good:
      failures.append(f"image {i}: {measured}")
  assert not failures, f"{oracle} seed {SEED}: " + "; ".join(failures)
