"""python -m mrcnn_jax.train --config mrcnn_jax/configs/keypoints_tiny.py --workdir runs/keypoints_tiny

Tiny Keypoint R-CNN (with masks) on the synthetic stick figures (`prepare keypoints`: 11 keypoints,
one class), CPU-friendly: shapes_tiny's recipe (ResNet-18 width 32, FPN 64, 128 px canvas, AdamW)
with a narrow keypoint head (4 convs of 64 channels instead of 8 of 512, 56 x 56 heatmaps) trained
on 8 foreground RoIs per image, and the cheaper box head of docs/quickstart.md's slow-CPU levers
(FC 256 on 64 RoIs per image: one class leaves the classifier little to learn).
"""

from mrcnn_jax.configs import shapes_tiny


def get_config():
  config = shapes_tiny.get_config()
  config.num_classes, config.class_names = 1, ("figure",)
  config.data.name = "mrcnn_figures"
  config.data.max_instances = 6

  config.model.roi.fc_dim, config.model.roi.batch_per_image = 256, 64

  k = config.model.keypoint
  k.num_keypoints = 11
  k.conv_dim, k.num_convs = 64, 4
  k.rois_per_image = 8
  return config
