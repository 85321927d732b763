"""Names and shapes of torchvision state dicts, written out without torch: ``maskrcnn_resnet50_fpn``,
``keypointrcnn_resnet50_fpn`` and ResNet classifiers (test_torchvision_parity.py checks ``tv_shapes``
against the oracle's real checkpoint)."""

RESNET_STAGES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}


def resnet_shapes(depth="resnet50", prefix=""):
  """{name: shape} of torchvision's ResNet trunk (conv1, bn1, layer1..4), names after ``prefix``."""
  block, counts = RESNET_STAGES[depth]
  bn = lambda name, c: {f"{name}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}
  shapes = {f"{prefix}conv1.weight": (64, 3, 7, 7), **bn(f"{prefix}bn1", 64)}
  cin = 64
  for stage, count in enumerate(counts, 1):
    width = 64 * 2 ** (stage - 1)
    cout = width * (4 if block == "bottleneck" else 1)
    for i in range(count):
      p = f"{prefix}layer{stage}.{i}."
      convs = ([(cin, width, 1), (width, width, 3), (width, cout, 1)] if block == "bottleneck" else
               [(cin, width, 3), (width, cout, 3)])
      for k, (a, b, size) in enumerate(convs, 1):
        shapes.update({f"{p}conv{k}.weight": (b, a, size, size), **bn(f"{p}bn{k}", b)})
      if i == 0 and (cin != cout or stage > 1):
        shapes.update({f"{p}downsample.0.weight": (cout, cin, 1, 1), **bn(f"{p}downsample.1", cout)})
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
                 "rpn.head.cls_logits.weight": (3, 256, 1, 1), "rpn.head.cls_logits.bias": (3,),
                 "rpn.head.bbox_pred.weight": (12, 256, 1, 1), "rpn.head.bbox_pred.bias": (12,),
                 "roi_heads.box_head.fc6.weight": (1024, 256 * 7 * 7), "roi_heads.box_head.fc6.bias": (1024,),
                 "roi_heads.box_head.fc7.weight": (1024, 1024), "roi_heads.box_head.fc7.bias": (1024,),
                 "roi_heads.box_predictor.cls_score.weight": (num_classes, 1024),
                 "roi_heads.box_predictor.cls_score.bias": (num_classes,),
                 "roi_heads.box_predictor.bbox_pred.weight": (4 * num_classes, 1024),
                 "roi_heads.box_predictor.bbox_pred.bias": (4 * num_classes,)})
  if num_keypoints:
    for i in range(8):  # Sequential(conv, ReLU, conv, ReLU, ...)
      shapes.update({f"roi_heads.keypoint_head.{2 * i}.weight": (512, 512 if i else 256, 3, 3),
                     f"roi_heads.keypoint_head.{2 * i}.bias": (512,)})
    return {**shapes, "roi_heads.keypoint_predictor.kps_score_lowres.weight": (512, num_keypoints, 4, 4),
            "roi_heads.keypoint_predictor.kps_score_lowres.bias": (num_keypoints,)}
  for i in range(4):
    conv = f"roi_heads.mask_head.mask_fcn{i + 1}." if old_names else f"roi_heads.mask_head.{i}.0."
    shapes.update({conv + "weight": (256, 256, 3, 3), conv + "bias": (256,)})
  shapes.update({"roi_heads.mask_predictor.conv5_mask.weight": (256, 256, 2, 2),
                 "roi_heads.mask_predictor.conv5_mask.bias": (256,),
                 "roi_heads.mask_predictor.mask_fcn_logits.weight": (num_classes, 256, 1, 1),
                 "roi_heads.mask_predictor.mask_fcn_logits.bias": (num_classes,)})
  return shapes
