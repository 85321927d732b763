"""python -m experiments.run table2 --quick --workdir /tmp/t2   (this preset, 2 steps per arm)

shapes_tiny shrunk to the smallest model that still exercises every code path: 64 px canvas, a
width-8 ResNet-18-FPN and a few RoIs. For tests and the sweeps' ``--quick`` runs, not for results.
"""

from mrcnn_jax import configs
from mrcnn_jax.configs import shapes_tiny

OVERRIDES = {
    "data.canvas": 64, "data.min_size": 64, "data.max_size": 64, "data.max_instances": 4,
    "data.gt_mask_size": 16,
    "model.width": 8, "model.fpn_channels": 16,
    "model.rpn.batch_per_image": 32, "model.rpn.pre_nms_topk_train": 64, "model.rpn.post_nms_topk_train": 32,
    "model.rpn.pre_nms_topk_test": 64, "model.rpn.post_nms_topk_test": 32,
    "model.roi.batch_per_image": 16, "model.roi.fc_dim": 32,
    "model.roi.candidates_per_image": 64, "model.roi.detections_per_image": 8,
    "model.mask.conv_dim": 8, "model.mask.num_convs": 2, "model.mask.mlp_dim": 32,
    "model.mask.rois_per_image": 0,
}


def get_config():
  return configs.override(shapes_tiny.get_config(), OVERRIDES)
