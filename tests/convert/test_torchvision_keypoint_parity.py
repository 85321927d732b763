"""Keypoint R-CNN parity with torchvision 0.28's keypointrcnn_resnet50_fpn at its default transform (800 /
1333) on photographs at their own sizes (``scripts/oracles/tv_keypoint_oracle.py``'s outputs in
$MRCNN_TV_ORACLE/keypoints, seeds 0 and 1 of calibrated random weights; skipped when they are not made):
the checkpoint converted with its default config (no overrides: torchvision's in-graph resize, RoIAlign
aligned=False with 2 x 2 samples, its keypoint score, the bicubic logit at the argmax) gives
torchvision's boxes, scores and keypoints in original pixels: >= 95 % of its detections matched per image
(box IoU > 0.98, score difference < 1e-3), and on those >= 95 % of keypoints within 1 px with score
differences < 1e-3. The suite runs chelsea and the portrait astronaut crop; ``MRCNN_PARITY_ALL=1`` all six.
"""

import os

import numpy as np
import oracles
import pytest

import mrcnn_jax
from mrcnn_jax.convert.__main__ import main as convert_cli

ORACLE = os.path.join(oracles.TORCHVISION, "keypoints")
IMAGES = range(6) if os.environ.get("MRCNN_PARITY_ALL") else (1, 4)
SEEDS = (0, 1)


@pytest.fixture(scope="module", params=SEEDS)
def parity(request, tmp_path_factory):
  """(seed, model, torchvision's outputs, our ``Detections.image`` per image index)."""
  seed = request.param
  checkpoint, outputs = (os.path.join(ORACLE, f) for f in (f"tv_kprcnn_seed{seed}.pth", f"outputs_seed{seed}.npz"))
  if not (os.path.exists(checkpoint) and os.path.exists(outputs)):
    pytest.skip(f"no torchvision keypoint oracle for seed {seed} in {ORACLE}: make it with "
                "<torch venv>/bin/python scripts/oracles/tv_keypoint_oracle.py")
  workdir = str(tmp_path_factory.mktemp(f"tv_keypoints{seed}") / "workdir")
  assert convert_cli(["torchvision", checkpoint, "--out", workdir]) == 0
  model = mrcnn_jax.load(workdir)
  ref = np.load(outputs)
  detections = mrcnn_jax.predict(model, [ref[f"img{i}_image"] for i in IMAGES])
  return seed, model, ref, dict(zip(IMAGES, (detections.image(b) for b in range(len(IMAGES)))))


def test_converted_config_is_torchvisions_keypoint_model(parity):
  config = parity[1].config
  assert config.class_names == ("person",) and not config.model.mask_on and config.model.keypoint.score == "logit"
  assert config.model.keypoint.num_keypoints == 17 and config.data.resize == "torchvision"
  assert not config.model.roi.aligned and config.model.roi.sampling_ratio == 2


def test_detections_and_keypoints_match_torchvision(parity):
  seed, _, ref, det = parity
  for i in IMAGES:
    matched, score, close, measured = oracles.keypoint_agreement(ref[f"img{i}_boxes"], ref[f"img{i}_scores"],
                                                                 ref[f"img{i}_keypoints"], det[i])
    print(f"seed {seed} image {i}: {measured}")
    assert matched >= 0.95 and score < 1e-3 and close >= 0.95, f"seed {seed} image {i}: {measured}"
