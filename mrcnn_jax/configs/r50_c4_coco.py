"""python -m mrcnn_jax.train --config mrcnn_jax/configs/r50_c4_coco.py --workdir runs/r50_c4 --config.data.data_dir=D

Mask R-CNN R50-C4 on COCO 2017: RoIs pooled 14x14 from res4 (stride 16), res5 as the RoI head,
14x14 masks; one anchor level at stride 16 with all five sizes (the paper's ResNet-C4 row).
"""

from mrcnn_jax.configs import r50_fpn_coco


def get_config():
  config = r50_fpn_coco.get_config()
  m = config.model
  m.head = "c4"
  m.roi.pooler_resolution = 14
  m.rpn.pre_nms_topk_train, m.rpn.pre_nms_topk_test = 12000, 6000
  m.rpn.post_nms_topk_train, m.rpn.post_nms_topk_test = 2000, 1000
  return config
