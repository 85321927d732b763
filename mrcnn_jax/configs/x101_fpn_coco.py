"""python -m mrcnn_jax.train --config mrcnn_jax/configs/x101_fpn_coco.py --workdir runs/x101_fpn --config.data.data_dir=D

Mask R-CNN X101-32x8d-FPN on COCO 2017 (the paper's best backbone, ResNeXt-101 with 32 groups of 8
channels in res2, doubling per stage): r50_fpn_coco with a ResNeXt-101 trunk. Detectron2's
mask_rcnn_X_101_32x8d_FPN_3x.pkl converts to this model (python -m mrcnn_jax.convert detectron2).
"""

from mrcnn_jax.configs import r50_fpn_coco


def get_config():
  config = r50_fpn_coco.get_config()
  m = config.model
  m.backbone, m.num_groups, m.width_per_group = "resnet101", 32, 8
  return config
