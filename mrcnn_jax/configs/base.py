"""python -m mrcnn_jax.train --config mrcnn_jax/configs/base.py --workdir runs/base

Base config: Mask R-CNN R50-FPN with Detectron2's defaults. Presets import it and override fields.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.num_classes = 0       # 0: the prepared dataset's number of classes (and their names)
  config.class_names = ()      # (): the dataset's names

  # Where imported weights came from (python -m mrcnn_jax.convert); "" for a model trained here.
  # backbone_only: the checkpoint holds only an ImageNet ResNet (at backbone/bottom_up), to start
  # training from (train.init_from), not a model to run.
  config.pretrained = ml_collections.ConfigDict(dict(source="", file="", sha256="", backbone_only=False))

  config.data = ml_collections.ConfigDict(dict(
      # COCO 2017 with instance masks, prepared by the folder builder:
      #   python -m mrcnn_jax.data.prepare folder --name coco2017 --data_dir data \
      #     --annotations train=annotations/instances_train2017.json \
      #                   validation=annotations/instances_val2017.json \
      #     --images train=train2017 validation=val2017
      # ("coco/2017", TFDS's own builder, has boxes but no masks: GT masks become whole boxes.)
      name="coco2017",
      data_dir="data",
      canvas=1024,            # square padded canvas side; multiple of 32 (the canvas when `canvases` is empty)
      canvases=(),            # fixed (height, width) canvases, each a multiple of 32: training groups its
                              # batches by them (e.g. ((832, 1344), (1344, 832)): landscape and portrait);
                              # an image goes on the smallest that holds it. (): the square `canvas`
      size_divisibility=0,    # inference canvas: 0: the fixed canvases above; N (a multiple of 32): the
                              # resized image rounded up to a multiple of N (Detectron2's and torchvision's 32)
      min_size=800,           # resize: short side
      max_size=1024,          # resize: long side at most
      resize="pil",           # pil: PIL bilinear on uint8, sides int(x + 0.5) (Detectron2's; training's) |
                              # torchvision: inference resizes the normalised float image in the graph
                              # (bilinear, sides floor(x), torchvision's GeneralizedRCNNTransform)
      max_instances=100,      # GT padded to this many instances
      gt_mask_size=64,        # GT masks stored cropped to their box at this resolution
      train_split="train",
      eval_split="validation",
      batch_size=16,          # global batch (all hosts)
      eval_batch_size=8,
      num_workers=0,
      flip=True,
      # Keypoints (config.model.keypoint.num_keypoints > 0), filled from the dataset: their names, the
      # index pairs a horizontal flip swaps (left/right), COCO's OKS sigmas for evaluation, and the
      # skeleton's (i, j) limbs that pictures draw.
      keypoint_names=(),
      keypoint_flip_map=(),
      keypoint_sigmas=(),
      keypoint_skeleton=(),
  ))

  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet50",    # resnet18 | resnet34 | resnet50 | resnet101
      width=64,               # stem / res2 width
      num_groups=1,           # ResNeXt: groups of the bottlenecks' 3x3 convs (Detectron2's NUM_GROUPS; X101: 32)
      width_per_group=0,      # ResNeXt: res2's channels per group (WIDTH_PER_GROUP; X101-32x8d: 8); 0: a
                              # ResNet (res2's bottleneck is `width` wide)
      norm="group",           # group (from scratch) | frozen_bn (imported ImageNet weights)
      head_norm="",           # FPN, box-head and FCN mask-head convs: "" (none, Detectron2's default) | group |
                              # frozen_bn (torchvision's v2 weights)
      head="fpn",             # fpn | c4 (RoIs from res4 through res5) | c5 (RoIs from res5, stride 32)
      c4_res5_width=0,        # C4: width of the res5 blocks run on every RoI; 0: the backbone's own
                              # (width x 8); narrower cuts C4's per-RoI cost (not for imported weights)
      fpn_channels=256,
      dtype="float32",        # compute dtype: float32 | bfloat16 (parameters stay float32)
      freeze_at=0,            # stages 1..freeze_at get no updates (2 with ImageNet weights)
      stride_in_1x1=False,    # bottlenecks stride in the first 1x1 conv (Detectron2's MSRA weights), not the 3x3
      input_format="RGB",     # channel order the backbone sees: RGB | BGR (Detectron2's weights)
      pixel_mean=(123.675, 116.28, 103.53),  # in input_format's order
      pixel_std=(58.395, 57.12, 57.375),
      padding="black",        # the canvas outside the image: black (uint8 zeros, then normalised) |
                              # normalized (zeros after normalising: Detectron2's and torchvision's)
      anchor_sizes=(32, 64, 128, 256, 512),
      anchor_ratios=(0.5, 1.0, 2.0),
      round_anchors=False,    # cell anchors' corners rounded to integers (torchvision's AnchorGenerator)
      # The paper's Table 2 switches.
      pooler="roi_align",     # roi_align | roi_pool | roi_warp
      mask_loss="sigmoid",    # sigmoid (decoupled) | softmax (multinomial across classes)
      mask_mode="class_specific",  # class_specific | agnostic
      mask_head="fcn",        # fcn | mlp
      mask_on=True,           # the mask branch (False: boxes, and keypoints if any, only)
  ))
  config.model.rpn = ml_collections.ConfigDict(dict(
      fg_iou=0.7, bg_iou=0.3, batch_per_image=256, positive_fraction=0.5,
      pre_nms_topk_train=2000, post_nms_topk_train=1000,
      pre_nms_topk_test=1000, post_nms_topk_test=1000,
      nms_threshold=0.7, min_size=0.0,
      num_convs=1,            # the head's 3x3 convs (torchvision's v2: 2)
  ))
  config.model.roi = ml_collections.ConfigDict(dict(
      fg_iou=0.5, batch_per_image=512, positive_fraction=0.25,
      pooler_resolution=7, aligned=True,
      num_convs=0, conv_dim=256, num_fc=2, fc_dim=1024,  # box head: 3x3 convs, then FCs (torchvision's v2: 4, 1)
      sampling_ratio=2,       # RoIAlign samples per bin and axis; 0: Detectron2's adaptive
                              # ceil(roi / S), in static shapes capped at max_sampling_ratio
      max_sampling_ratio=0,   # that cap G (cost ~ G^2); 0: per pooler, exact for every square RoI
                              # (C4/C5: every RoI) on the canvas (FPN 7x7: G=4..6, 14x14: 2..3)
      canonical_size=224,     # FPN: RoIs of this side are pooled from P4 (keep on small canvases)
      box_weights=(10.0, 10.0, 5.0, 5.0),
      score_threshold=0.05, nms_threshold=0.5, detections_per_image=100,
      min_box_size=0.0,       # detections narrower or lower than this (canvas px) dropped before NMS
                              # (torchvision: 1e-2; 0 keeps all)
      candidates_per_image=2000,  # best (box, class) pairs kept for NMS (a static bound)
  ))
  config.model.mask = ml_collections.ConfigDict(dict(
      pooler_resolution=14, conv_dim=256, num_convs=4, mlp_dim=1024,
      rois_per_image=0,       # foreground RoIs per image the mask loss trains on; 0: all (Detectron2)
      paste_border="clamp",   # paste-back: clamp (an all-ones mask fills its box) | zeros (Detectron2's
                              # grid_sample) | torchvision (its paste_masks_in_image: see ops.paste_masks)
      detections_per_pass=20,  # detect: mask head on this many detection slots at a time, skipping the
                               # passes after the last valid detection; 0: all slots in one pass
  ))

  # The keypoint branch (Keypoint R-CNN, the paper's section 5; model/keypoint_head.py): RoIs pooled at
  # pooler_resolution -> num_convs x (3x3 conv, conv_dim, ReLU) -> 4x4 stride-2 deconv -> 2x bilinear:
  # heatmap_size (= 4 x pooler_resolution) logits per keypoint, a softmax over positions.
  config.model.keypoint = ml_collections.ConfigDict(dict(
      num_keypoints=0,        # K; 0: no keypoint branch
      pooler_resolution=14, conv_dim=512, num_convs=8, heatmap_size=56,
      rois_per_image=0,       # foreground RoIs per image the keypoint loss trains on; 0: all (Detectron2)
      loss_weight=1.0,
      score="detectron2",     # a keypoint's score: detectron2 (the resized map's maximum over the 56x56
                              # softmax denominator: can exceed 1) | logit (that maximum: torchvision's)
  ))

  config.train = ml_collections.ConfigDict(dict(
      seed=0,
      optimizer="sgd",        # sgd (the paper's) | adamw
      steps=90_000,
      base_lr=0.02,           # at batch 16; scaled linearly with data.batch_size
      warmup_steps=1000,
      warmup_factor=0.001,
      lr_schedule="step",     # step: x0.1 at each of decay_steps | cosine: to 0 at `steps`
      decay_steps=(60_000, 80_000),
      momentum=0.9,
      weight_decay=1e-4,
      clip_norm=0.0,          # 0: no clipping
      checkpoint_every=5000,
      keep=3,
      eval_every=0,           # >0: every N steps and at the end; 0: only at the end; <0: never
      log_every=20,
      # > 0: the run must end within this many seconds (final evaluation excluded): it measures its
      # rate and shortens the schedule if the steps do not fit (train/budget.py).
      time_budget_s=0.0,
      # A converted workdir (python -m mrcnn_jax.convert: a whole model or an ImageNet backbone) whose
      # weights start the run; its ResNet and input fields replace model's (train/init_from.py).
      init_from="",
  ))
  return config
