"""python -m mrcnn_jax.train --config mrcnn_jax/configs/r50_fpn_coco.py --workdir runs/r50_fpn --config.data.data_dir=D

Mask R-CNN R50-FPN on COCO 2017, the paper's defaults (Detectron2's 1x schedule, batch 16). On a TPU slice:
    scripts/train_tpu.sh --tpu NAME --zone ZONE --config mrcnn_jax/configs/r50_fpn_coco.py --workdir gs://B/r50fpn
Prepare COCO (with masks) once from the official files:
    python -m mrcnn_jax.data.prepare folder --name coco2017 --data_dir D \
        --annotations train=annotations/instances_train2017.json validation=annotations/instances_val2017.json \
        --images train=train2017 validation=val2017

Canvas 1024 (images resized to short side 800, long side <= 1024). For the paper's 800 x 1333 use
--config.data.canvas=1344 --config.data.max_size=1333. From scratch this uses GroupNorm; with imported
ImageNet weights set model.norm=frozen_bn and model.freeze_at=2.
"""

from mrcnn_jax.configs import base
from mrcnn_jax.data.coco_classes import COCO_CLASSES


def get_config():
  config = base.get_config()
  config.num_classes = 80  # COCO's; set 0 (and class_names=()) to take another dataset's
  config.class_names = COCO_CLASSES
  config.data.name = "coco2017"
  config.data.num_workers = 8
  return config
