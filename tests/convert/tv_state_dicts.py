"""Names and shapes of torchvision state dicts, written out without torch: ``maskrcnn_resnet50_fpn`` (v1 and
v2), ``keypointrcnn_resnet50_fpn`` and ResNet classifiers (the parity tests check ``tv_shapes`` /
``tv_v2_shapes`` against the oracles' real checkpoints)."""

RESNET_STAGES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}


def resnet_shapes(depth="resnet50", prefix="", stem=64):
  """{name: shape} of torchvision's ResNet trunk (conv1, bn1, layer1..4) with ``stem`` channels out of
  conv1, names after ``prefix``."""
  block, counts = RESNET_STAGES[depth]
  shapes = {f"{prefix}conv1.weight": (stem, 3, 7, 7), **_bn(f"{prefix}bn1", stem)}
  cin = stem
  for stage, count in enumerate(counts, 1):
    width = stem * 2 ** (stage - 1)
    cout = width * (4 if block == "bottleneck" else 1)
    for i in range(count):
      p = f"{prefix}layer{stage}.{i}."
      convs = ([(cin, width, 1), (width, width, 3), (width, cout, 1)] if block == "bottleneck" else
               [(cin, width, 3), (width, cout, 3)])
      for k, (a, b, size) in enumerate(convs, 1):
        shapes.update({f"{p}conv{k}.weight": (b, a, size, size), **_bn(f"{p}bn{k}", b)})
      if i == 0 and (cin != cout or stage > 1):
        shapes.update({f"{p}downsample.0.weight": (cout, cin, 1, 1), **_bn(f"{p}downsample.1", cout)})
      cin = cout
  return shapes


def tv_shapes(num_classes=5, old_names=False, num_keypoints=0):
  """{name: shape} of torchvision's maskrcnn_resnet50_fpn(num_classes=...) state dict (FrozenBN);
  ``old_names``: as torchvision < 0.13 named the FPN, RPN and mask-head convs; ``num_keypoints`` > 0:
  keypointrcnn_resnet50_fpn(num_classes=..., num_keypoints=...)'s instead (a keypoint head, no mask head)."""
  new = "" if old_names else "0."
  shapes = resnet_shapes(prefix="backbone.body.")
  for i, cin in enumerate((256, 512, 1024, 2048)):
    shapes.update({f"backbone.fpn.inner_blocks.{i}.{new}weight": (256, cin, 1, 1),
                   f"backbone.fpn.inner_blocks.{i}.{new}bias": (256,),
                   f"backbone.fpn.layer_blocks.{i}.{new}weight": (256, 256, 3, 3),
                   f"backbone.fpn.layer_blocks.{i}.{new}bias": (256,)})
  rpn_conv = "rpn.head.conv." + ("" if old_names else "0.0.")
  shapes.update({rpn_conv + "weight": (256, 256, 3, 3), rpn_conv + "bias": (256,),
                 "roi_heads.box_head.fc6.weight": (1024, 256 * 7 * 7), "roi_heads.box_head.fc6.bias": (1024,),
                 "roi_heads.box_head.fc7.weight": (1024, 1024), "roi_heads.box_head.fc7.bias": (1024,)})
  if num_keypoints:
    for i in range(8):  # Sequential(conv, ReLU, conv, ReLU, ...)
      shapes.update({f"roi_heads.keypoint_head.{2 * i}.weight": (512, 512 if i else 256, 3, 3),
                     f"roi_heads.keypoint_head.{2 * i}.bias": (512,)})
    return {**shapes, "roi_heads.keypoint_predictor.kps_score_lowres.weight": (512, num_keypoints, 4, 4),
            "roi_heads.keypoint_predictor.kps_score_lowres.bias": (num_keypoints,),
            **_outputs(num_classes, mask=False)}
  for i in range(4):
    conv = f"roi_heads.mask_head.mask_fcn{i + 1}." if old_names else f"roi_heads.mask_head.{i}.0."
    shapes.update({conv + "weight": (256, 256, 3, 3), conv + "bias": (256,)})
  return {**shapes, **_outputs(num_classes)}


def tv_v2_shapes(num_classes=5, depth="resnet50", stem=64, fc_dim=1024):
  """{name: shape} of torchvision's maskrcnn_resnet50_fpn_v2(num_classes=...) state dict: BatchNorm2d (with
  its counter) in the ResNet and after each FPN, box-head and mask-head conv (a ".0." conv, ".1." BN pair),
  2 RPN convs, a box head of 4 convs and 1 FC (``box_head.5``, ``fc_dim`` wide). ``depth`` and ``stem``
  shrink the ResNet for tests (torchvision's own: resnet50, 64)."""
  shapes = resnet_shapes(depth, "backbone.body.", stem)
  shapes.update({name.replace("running_var", "num_batches_tracked"): () for name in list(shapes)
                 if name.endswith("running_var")})
  conv_bn = lambda name, cin, k: {f"{name}.0.weight": (256, cin, k, k), **_bn(f"{name}.1", 256),
                                  f"{name}.1.num_batches_tracked": ()}
  expansion = 4 if RESNET_STAGES[depth][0] == "bottleneck" else 1
  for i in range(4):
    shapes.update({**conv_bn(f"backbone.fpn.inner_blocks.{i}", stem * expansion * 2 ** i, 1),
                   **conv_bn(f"backbone.fpn.layer_blocks.{i}", 256, 3)})
  for i in range(2):
    shapes.update({f"rpn.head.conv.{i}.0.weight": (256, 256, 3, 3), f"rpn.head.conv.{i}.0.bias": (256,)})
  for i in range(4):
    shapes.update({**conv_bn(f"roi_heads.box_head.{i}", 256, 3), **conv_bn(f"roi_heads.mask_head.{i}", 256, 3)})
  shapes.update({"roi_heads.box_head.5.weight": (fc_dim, 256 * 7 * 7), "roi_heads.box_head.5.bias": (fc_dim,)})
  return {**shapes, **_outputs(num_classes, fc_dim)}


def _bn(name, channels):
  return {f"{name}.{k}": (channels,) for k in ("weight", "bias", "running_mean", "running_var")}


def _outputs(num_classes, fc_dim=1024, mask=True):
  """RPN outputs, box predictor and (``mask``) mask predictor: the same in v1 and v2."""
  outputs = {"rpn.head.cls_logits.weight": (3, 256, 1, 1), "rpn.head.cls_logits.bias": (3,),
          "rpn.head.bbox_pred.weight": (12, 256, 1, 1), "rpn.head.bbox_pred.bias": (12,),
          "roi_heads.box_predictor.cls_score.weight": (num_classes, fc_dim),
          "roi_heads.box_predictor.cls_score.bias": (num_classes,),
          "roi_heads.box_predictor.bbox_pred.weight": (4 * num_classes, fc_dim),
          "roi_heads.box_predictor.bbox_pred.bias": (4 * num_classes,)}
  masks = {"roi_heads.mask_predictor.conv5_mask.weight": (256, 256, 2, 2),
           "roi_heads.mask_predictor.conv5_mask.bias": (256,),
           "roi_heads.mask_predictor.mask_fcn_logits.weight": (num_classes, 256, 1, 1),
           "roi_heads.mask_predictor.mask_fcn_logits.bias": (num_classes,)}
  return {**outputs, **masks} if mask else outputs
