"""python -m mrcnn_jax.train --config mrcnn_jax/configs/shapes_tiny.py --workdir runs/shapes_tiny

Tiny Mask R-CNN on the synthetic shapes dataset: small ResNet-18-FPN, 128 px canvas, CPU-friendly.
The quickstart's recipe (about 13 minutes of training and evaluation on 2 CPU cores), tuned for few steps from
scratch: AdamW instead of the paper's SGD, GroupNorm in the FPN and mask head too (Detectron2's
from-scratch setting), width 32, one RoIAlign sample per bin, every proposal sampled for the box
head, a 2-conv mask head trained on 8 foreground RoIs per image.
"""

from mrcnn_jax.configs import base


def get_config():
  config = base.get_config()
  config.num_classes = 4
  config.class_names = ("circle", "square", "triangle", "bar")

  d = config.data
  d.name = "mrcnn_shapes"
  d.canvas, d.min_size, d.max_size = 128, 128, 128
  d.max_instances, d.gt_mask_size = 8, 32
  d.batch_size, d.eval_batch_size = 8, 16

  m = config.model
  m.backbone, m.width, m.fpn_channels, m.head_norm = "resnet18", 32, 64, "group"
  m.anchor_sizes = (8, 16, 32, 64, 128)  # COCO's / 4; canonical_size stays 224 (RoIs pooled from P2)
  m.roi.sampling_ratio = 1  # what Detectron2's adaptive grid picks for nearly all RoIs this small
  m.rpn.batch_per_image = 64
  m.rpn.pre_nms_topk_train, m.rpn.post_nms_topk_train = 256, 128
  m.rpn.pre_nms_topk_test, m.rpn.post_nms_topk_test = 256, 100
  m.roi.batch_per_image = 128  # every proposal: twice Detectron2's share of them, for the classifier
  m.roi.candidates_per_image, m.roi.detections_per_image = 400, 20
  m.mask.conv_dim, m.mask.num_convs = 32, 2
  m.mask.rois_per_image = 8  # of the 32 foreground slots: the mask head's training cost / 4

  t = config.train
  t.optimizer, t.base_lr = "adamw", 0.004  # 0.002 at this batch of 8 (linear scaling)
  t.steps, t.warmup_steps, t.decay_steps = 2250, 100, (1875, 2150)
  t.checkpoint_every, t.eval_every, t.log_every = 250, 750, 50
  return config


def paper_recipe(config):
  """``config`` (shapes_tiny's, or the tiny preset built on it) with the paper's recipe where the
  quickstart departs from it: SGD at lr 0.02 for batch 8, no norm in the FPN and mask head,
  RoIAlign's 2 x 2 samples per bin, the 4-conv mask head trained on every foreground RoI, and the
  narrower width 16 (the trainer's equivalence tests use it). Returns ``config``, changed in place."""
  config.model.width, config.model.head_norm = 16, ""
  config.model.roi.sampling_ratio = 2
  config.model.mask.num_convs, config.model.mask.rois_per_image = 4, 0
  config.train.optimizer, config.train.base_lr = "sgd", 0.04
  return config
