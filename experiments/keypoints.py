"""python -m experiments.run keypoints --workdir runs/keypoints [--seeds 2] [--steps 300]

The paper's Table 6 (RoIAlign vs. RoIPool for keypoint detection, ResNet-50-FPN) on the synthetic
stick figures (`prepare keypoints`): two arms, the keypoint model of ``base_config()`` with every
pooler (box and keypoint heads) RoIAlign or RoIPool, nothing else changed, nothing tuned per arm.
Results go to experiments/results_keypoints/ (``RESULTS``).

The base is the keypoints_tiny preset (ResNet-18 width 32, FPN 64, 128 px canvas, AdamW, a 4-conv
keypoint head of 64 channels on 8 foreground RoIs per image, 56 x 56 heatmaps) without its mask
branch, as the paper's keypoint-only model, with RoIAlign's 2 x 2 samples per bin (the paper's),
trained for ``steps`` with the preset's schedule scaled to them and evaluated once, at the end.
"""

import os

from experiments import paper, sweep
from experiments.sweep import Claim, Gap, Row, Score, SubTable
from mrcnn_jax.configs import keypoints_tiny, tiny

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results_keypoints")
DEFAULT_STEPS = 300
DEFAULT_SEEDS = 2
QUICK = {**tiny.OVERRIDES, "model.keypoint.conv_dim": 8, "model.keypoint.num_convs": 1,
         "model.keypoint.rois_per_image": 0,  # all foreground slots: tiny's RoI batch has fewer than 8
         "data.batch_size": 2, "data.eval_batch_size": 4, "train.log_every": 1}
QUICK_STEPS = 2
KEYPOINT_COLUMNS = ("keypoints/AP", "keypoints/AP50", "keypoints/AP75", "bbox/AP")


def base_config(steps: int = DEFAULT_STEPS):
  """keypoints_tiny without masks, RoIAlign 2 x 2, ``steps`` steps (the preset's schedule scaled)."""
  config = keypoints_tiny.get_config()
  config.model.mask_on = False
  config.model.roi.sampling_ratio = 2
  return sweep.scaled(config, steps)


SUBTABLES = (
    SubTable(
        "6", "RoIAlign vs. RoIPool for keypoint detection", source=paper.KEYPOINT_SOURCE,
        rows=(Row("kp_roi_pool", "RoIPool", {"model.pooler": "roi_pool"}, "6/RoIPool"),
              Row("kp_roi_align", "RoIAlign", {}, "6/RoIAlign")),
        claims=(Claim("RoIAlign > RoIPool", ">", Score("kp_roi_align", "keypoints/AP"),
                      Score("kp_roi_pool", "keypoints/AP")),
                Claim("RoIAlign's gain larger at AP75 than at AP50", ">",
                      Gap("kp_roi_align", "kp_roi_pool", "keypoints/AP75"),
                      Gap("kp_roi_align", "kp_roi_pool", "keypoints/AP50"))),
        note="Ours: ResNet-18-FPN keypoint-only model on 11-keypoint stick figures (OKS with COCO-like "
             "sigmas, figures.py); the paper's: ResNet-50-FPN on COCO persons, APm/APl 55.1/67.4 "
             "(RoIPool) and 58.7/73.0 (RoIAlign).",
        metrics=KEYPOINT_COLUMNS),
)
