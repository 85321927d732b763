"""RoI heads: pooled RoI features -> class, box, mask and keypoints, for training (losses) and inference
(detect).

``StandardROIHeads`` (FPN and C5): pooler -> ``box_head`` (convs and FCs) -> ``box_predictor``; pooler ->
``mask_head`` (FCN or MLP; ``model.mask_on``); pooler -> ``keypoint_head`` (when
``model.keypoint.num_keypoints`` > 0: Keypoint R-CNN). ``Res5ROIHeads`` (C4): pooler -> ``res5`` shared by the box branch (spatial
mean -> ``box_predictor``) and the mask branch (``mask_head``: the FCN head with zero convs), as in
Faster R-CNN's C4 and Detectron2's Res5ROIHeads; in training res5 runs once, on the sampled RoIs, and
the mask branch takes the foreground ones' outputs. Both share ``ROIHeads``'s training and inference flow.

Shapes: B images; P proposals per image; S sampled RoIs per image, of which the mask and keypoint losses
train on the first F foreground ones (F = ``mask.rois_per_image`` / ``keypoint.rois_per_image``, or all
foreground slots when 0); D detections per image; M mask resolution (28 for FPN/C5, 14 for C4); K
keypoints, on heatmaps of side ``keypoint.heatmap_size``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from flax.core import FrozenDict

from mrcnn_jax import ops
from mrcnn_jax.model.box_head import ConvFCHead
from mrcnn_jax.model.fast_rcnn import BoxPredictor, box_losses, detect_boxes
from mrcnn_jax.model.keypoint_head import KRCNNConvDeconvUpsampleHead, keypoint_loss
from mrcnn_jax.model.mask_head import FCNMaskHead, MLPMaskHead, mask_channels, mask_loss, mask_probabilities
from mrcnn_jax.model.pooling import pool_rois
from mrcnn_jax.model.resnet import make_stage, run_stage, stage_channels
from mrcnn_jax.model.roi_sampling import foreground_slots, sample_rois, select_foreground
from mrcnn_jax.ops.roi_pooling import sampling_grid


def take_slots(x, positions):
  """x [B,S,...] at positions [B,F] along S -> [B,F,...]."""
  return jnp.take_along_axis(x, positions.reshape(*positions.shape, *([1] * (x.ndim - 2))), axis=1)


class ROIHeads(nnx.Module):
  """The flow shared by both RoI heads; subclasses provide ``box_features`` and ``mask_features`` (and
  ``keypoint_features`` when they have keypoints).

  ``features`` below is a list of maps [B,H_l,W_l,C] (P2..P5 for FPN) or one map [B,H,W,C] at
  ``stride``, as the model's backbone gives them.
  """

  def _init_predictors(self, config: ml_collections.ConfigDict, box_features: int, mask_in: int,
                       mask_size: int, mask_convs: int, *, dtype, rngs: nnx.Rngs):
    """Builds ``box_predictor`` and ``mask_head`` on mask_in channels at mask_size x mask_size."""
    m = config.model
    self.mask_rois = _foreground_count(m, "mask")
    self.mask_on, self.num_keypoints = m.mask_on, m.keypoint.num_keypoints
    if m.mask.detections_per_pass < 0:
      raise ValueError("config.model.mask.detections_per_pass must be >= 0 (0: all detection slots in "
                       f"one pass), got {m.mask.detections_per_pass}")
    self.detections_per_pass = m.mask.detections_per_pass
    self.roi_cfg, self.box_weights, self.mask_loss_kind = m.roi, tuple(m.roi.box_weights), m.mask_loss
    self.pooler = FrozenDict(method=m.pooler, sampling_ratio=m.roi.sampling_ratio, aligned=m.roi.aligned,
                             max_sampling_ratio=m.roi.max_sampling_ratio,
                             canonical_size=m.roi.canonical_size)  # hashable: the graph's static data
    sampling_grid(m.roi.sampling_ratio, m.roi.max_sampling_ratio, 1)  # bad values: ValueError now
    channels = mask_channels(config.num_classes, m.mask_loss, m.mask_mode)
    self.box_predictor = BoxPredictor(box_features, config.num_classes, rngs=rngs)
    if m.mask_head not in ("fcn", "mlp"):
      raise ValueError(f"config.model.mask_head must be 'fcn' or 'mlp', got {m.mask_head!r}")
    if m.mask_on and m.mask_head == "fcn":
      self.mask_head = FCNMaskHead(mask_in, channels, dim=m.mask.conv_dim, num_convs=mask_convs,
                                   norm=m.head_norm, dtype=dtype, rngs=rngs)
    elif m.mask_on:
      self.mask_head = MLPMaskHead(mask_in * mask_size ** 2, channels, output_size=2 * mask_size,
                                   dim=m.mask.mlp_dim, dtype=dtype, rngs=rngs)

  def _init_keypoints(self, config: ml_collections.ConfigDict, cin: int, *, dtype, rngs: nnx.Rngs):
    """Builds ``keypoint_head`` on cin channels when ``model.keypoint.num_keypoints`` > 0."""
    k = config.model.keypoint
    if k.num_keypoints < 0 or k.heatmap_size != 4 * k.pooler_resolution:
      raise ValueError("config.model.keypoint: num_keypoints must be >= 0 and heatmap_size 4 x "
                       f"pooler_resolution (deconv x2, upsampling x2), got {k.num_keypoints}, "
                       f"{k.heatmap_size} and {k.pooler_resolution}")
    self.keypoint_rois, self.keypoint_resolution = _foreground_count(config.model, "keypoint"), k.pooler_resolution
    self.keypoint_loss_weight, self.keypoint_score = k.loss_weight, k.score
    if k.score not in ("detectron2", "logit"):
      raise ValueError(f"config.model.keypoint.score must be 'detectron2' or 'logit', got {k.score!r}")
    if k.num_keypoints:
      self.keypoint_head = KRCNNConvDeconvUpsampleHead(cin, k.num_keypoints, dim=k.conv_dim, num_convs=k.num_convs,
                                                       dtype=dtype, rngs=rngs)

  def pool(self, features, rois, size: int) -> jax.Array:
    """rois [B,N,4] -> pooled features [B*N,size,size,C]."""
    b, n = rois.shape[:2]
    pooled = pool_rois(features, rois, size, stride=self.stride, **self.pooler)
    return pooled.reshape(b * n, *pooled.shape[2:])

  def box_logits(self, features, rois):
    """rois [B,N,4] -> class logits [B,N,K+1], deltas [B,N,K,4]."""
    return self.predict_boxes(self.box_features(features, rois), rois.shape[:2])

  def predict_boxes(self, box_features, batch_shape):
    """box_features [B*N,F] -> class logits [B,N,K+1], deltas [B,N,K,4] (batch_shape: (B, N))."""
    logits, deltas = self.box_predictor(box_features)
    return logits.reshape(*batch_shape, -1), deltas.reshape(*batch_shape, *deltas.shape[1:])

  def mask_logits(self, features, rois) -> jax.Array:
    """rois [B,N,4] -> mask logits [B*N,M,M,C]."""
    return self.mask_head(self.mask_features(features, rois))

  def keypoint_logits(self, features, rois) -> jax.Array:
    """rois [B,N,4] -> heatmap logits [B*N,4S,4S,K]."""
    return self.keypoint_head(self.keypoint_features(features, rois))

  def train_logits(self, features, rois, fg):
    """Training's class logits [B,S,K+1] and deltas [B,S,K,4] of the sampled rois [B,S,4], and mask
    logits [B*F,M,M,C] of those at positions fg [B,F] (None without masks)."""
    masks = self.mask_logits(features, take_slots(rois, fg)) if self.mask_on else None
    return (*self.box_logits(features, rois), masks)

  def losses(self, features, proposals, proposal_valid, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """{"cls", "box", "mask" (with masks), "keypoint" (with keypoints)} for proposals [B,P,4] / valid
    [B,P] and the batch's ground truth."""
    num_images = proposals.shape[0]
    samples = jax.vmap(functools.partial(sample_rois, cfg=self.roi_cfg, box_weights=self.box_weights))(
        proposals, proposal_valid, batch["gt_boxes"], batch["gt_classes"], batch["gt_valid"],
        batch["gt_crowd"], jax.random.split(key, num_images))
    # Foreground RoIs are in random order, so the first ``mask_rois`` of them are a random subset.
    fg, fg_valid = jax.vmap(select_foreground, (0, None))(samples["classes"], self.mask_rois)
    cls_logits, box_deltas, logits = self.train_logits(features, samples["rois"], fg)
    cls_loss, box_loss = box_losses(cls_logits.reshape(-1, cls_logits.shape[-1]),
                                    box_deltas.reshape(-1, *box_deltas.shape[2:]),
                                    samples["classes"].reshape(-1), samples["box_targets"].reshape(-1, 4))
    losses = {"cls": cls_loss, "box": box_loss}
    if self.mask_on:
      fg_rois, fg_classes, fg_matched = (take_slots(samples[k], fg) for k in ("rois", "classes", "matched"))
      targets = jax.vmap(functools.partial(ops.mask_targets, size=logits.shape[1]))(
          batch["gt_masks"], batch["gt_boxes"], fg_rois, fg_matched)
      losses["mask"] = mask_loss(logits, targets.reshape(-1, *targets.shape[2:]), fg_classes.reshape(-1),
                                 fg_valid.reshape(-1), self.mask_loss_kind)
    if self.num_keypoints:
      losses["keypoint"] = self.keypoint_loss_weight * self.keypoint_losses(features, samples, batch["gt_keypoints"])
    return losses

  def keypoint_losses(self, features, samples, gt_keypoints) -> jax.Array:
    """The keypoint loss of the first F foreground RoIs of ``samples`` (``sample_rois``'s, [B,S,...])
    for gt_keypoints [B,G,K,3] (``ops.keypoint_targets``: labelled keypoints inside their RoI)."""
    fg, fg_valid = jax.vmap(select_foreground, (0, None))(samples["classes"], self.keypoint_rois)
    rois, matched = take_slots(samples["rois"], fg), take_slots(samples["matched"], fg)
    keypoints = take_slots(gt_keypoints, matched)  # [B,F,K,3]
    logits = self.keypoint_logits(features, rois)
    labels, valid = ops.keypoint_targets(keypoints.reshape(-1, *keypoints.shape[2:]), rois.reshape(-1, 4),
                                         logits.shape[1])
    return keypoint_loss(logits, labels, valid & fg_valid.reshape(-1, 1))

  def detect(self, features, proposals, proposal_valid, image_size, score_threshold,
             nms_threshold) -> dict[str, jax.Array]:
    """Final detections: boxes [B,D,4] (canvas pixels), scores [B,D], classes [B,D] (1..K), valid
    [B,D]; with masks, masks [B,D,M,M] (foreground probabilities in the box); with keypoints, keypoints
    [B,D,K,3] (x, y in canvas pixels, Detectron2's score). Thresholds may be traced scalars."""
    cls_logits, box_deltas = self.box_logits(features, proposals)
    boxes, scores, classes, valid = jax.vmap(functools.partial(
        detect_boxes, cfg=self.roi_cfg, box_weights=self.box_weights, score_threshold=score_threshold,
        nms_threshold=nms_threshold))(cls_logits, box_deltas, proposals, proposal_valid, image_size)
    out = {"boxes": boxes, "scores": scores, "classes": classes, "valid": valid}
    if self.mask_on:
      def masks(boxes, classes):
        probs = mask_probabilities(self.mask_logits(features, boxes), classes.reshape(-1), self.mask_loss_kind)
        return probs.reshape(*classes.shape, *probs.shape[1:])
      out["masks"] = self.per_detection(masks, boxes, classes, valid)
    if self.num_keypoints:
      level0 = features if self.stride else features[0]
      canvas_side = (self.stride or 4) * max(level0.shape[1:3])  # FPN: P2, stride 4
      def keypoints(boxes, classes):
        found = ops.heatmaps_to_keypoints(self.keypoint_logits(features, boxes), boxes.reshape(-1, 4), canvas_side,
                                          score=self.keypoint_score)
        return found.reshape(*classes.shape, *found.shape[1:])
      out["keypoints"] = self.per_detection(keypoints, boxes, classes, valid)
    return out

  def per_detection(self, head, boxes, classes, valid) -> jax.Array:
    """head(boxes [B,C,4], classes [B,C]) -> [B,C,...] on detections boxes [B,D,4], classes [B,D],
    valid [B,D] -> [B,D,...].

    The head runs on ``mask.detections_per_pass`` slots at a time. Detections come valid first, so the
    passes after every image's last valid slot are skipped (their outputs stay 0): the static bound D
    costs head work only where there are detections.
    """
    d = classes.shape[1]
    chunk = min(self.detections_per_pass or d, d)
    passes = -(-d // chunk)
    pad = lambda x: jnp.pad(x, [(0, 0), (0, passes * chunk - d)] + [(0, 0)] * (x.ndim - 2))
    boxes, classes, valid = pad(boxes), pad(classes), pad(valid)
    take = lambda x, i: jax.lax.dynamic_slice_in_dim(x, i * chunk, chunk, axis=1)
    run = lambda i: head(take(boxes, i), take(classes, i))

    first = run(0)
    if passes == 1:
      return first
    out = jnp.zeros((first.shape[0], passes * chunk, *first.shape[2:]), first.dtype).at[:, :chunk].set(first)
    _, out = jax.lax.while_loop(
        lambda carry: (carry[0] < passes) & jnp.any(take(valid, carry[0])),
        lambda carry: (carry[0] + 1, jax.lax.dynamic_update_slice_in_dim(
            carry[1], run(carry[0]), carry[0] * chunk, axis=1)),
        (1, out))
    return out[:, :d]


class StandardROIHeads(ROIHeads):
  """FPN (``stride`` None: RoIs pooled from their P2..P5 level) or C5 (one map at ``stride`` 32)."""

  def __init__(self, config: ml_collections.ConfigDict, in_channels: int, stride: int | None, *, dtype=None,
               rngs: nnx.Rngs):
    m = config.model
    self.stride = stride
    self.box_resolution, self.mask_resolution = m.roi.pooler_resolution, m.mask.pooler_resolution
    self.box_head = ConvFCHead(in_channels, self.box_resolution, num_convs=m.roi.num_convs, conv_dim=m.roi.conv_dim,
                               num_fc=m.roi.num_fc, fc_dim=m.roi.fc_dim, norm=m.head_norm, dtype=dtype, rngs=rngs)
    self._init_predictors(config, self.box_head.out_features, in_channels, self.mask_resolution,
                          m.mask.num_convs, dtype=dtype, rngs=rngs)
    self._init_keypoints(config, in_channels, dtype=dtype, rngs=rngs)

  def box_features(self, features, rois) -> jax.Array:
    return self.box_head(self.pool(features, rois, self.box_resolution))

  def mask_features(self, features, rois) -> jax.Array:
    return self.pool(features, rois, self.mask_resolution)

  def keypoint_features(self, features, rois) -> jax.Array:
    return self.pool(features, rois, self.keypoint_resolution)


class Res5ROIHeads(ROIHeads):
  """C4: RoIs pooled at ``roi.pooler_resolution`` (14) from res4 (stride 16) through res5 (-> 7x7), of the
  backbone's width or of ``model.c4_res5_width``."""

  def __init__(self, config: ml_collections.ConfigDict, stride: int, *, dtype=None, rngs: nnx.Rngs):
    m = config.model
    self.stride, self.resolution = stride, m.roi.pooler_resolution
    if m.c4_res5_width < 0:
      raise ValueError(f"config.model.c4_res5_width must be >= 0 (0: the backbone's own), got {m.c4_res5_width}")
    if m.keypoint.num_keypoints:
      raise ValueError("config.model.keypoint.num_keypoints > 0 needs head 'fpn' or 'c5' (as Detectron2, "
                       "Res5ROIHeads has no keypoint branch)")
    self.res5 = make_stage(m.backbone, 5, width=m.width, norm=m.norm, stride_in_1x1=m.stride_in_1x1,
                           stage_width=m.c4_res5_width, num_groups=m.num_groups,
                           width_per_group=m.width_per_group, dtype=dtype, rngs=rngs)
    channels = stage_channels(m.backbone, 5, m.width, m.c4_res5_width)
    self._init_predictors(config, channels, channels, self.resolution // 2, 0, dtype=dtype, rngs=rngs)

  def _res5(self, features, rois) -> jax.Array:
    return run_stage(self.res5, self.pool(features, rois, self.resolution))

  def box_features(self, features, rois) -> jax.Array:
    return self._res5(features, rois).mean(axis=(1, 2))

  def mask_features(self, features, rois) -> jax.Array:
    return self._res5(features, rois)

  def train_logits(self, features, rois, fg):
    """As ``ROIHeads.train_logits``, with res5 run once: the mask head takes the foreground RoIs'
    res5 outputs from the box branch's (Detectron2's Res5ROIHeads does the same)."""
    b, s = rois.shape[:2]
    res5 = self._res5(features, rois)  # [B*S,7,7,C]
    fg_res5 = take_slots(res5.reshape(b, s, *res5.shape[1:]), fg)
    masks = self.mask_head(fg_res5.reshape(-1, *res5.shape[1:])) if self.mask_on else None
    return (*self.predict_boxes(res5.mean(axis=(1, 2)), (b, s)), masks)


def _foreground_count(m: ml_collections.ConfigDict, branch: str) -> int:
  """F for ``model.{branch}.rois_per_image`` (0: all foreground slots); ValueError outside [0, slots]."""
  slots, count = foreground_slots(m.roi), m[branch].rois_per_image
  if not 0 <= count <= slots:
    raise ValueError(f"config.model.{branch}.rois_per_image must lie in [0, {slots}] (the foreground "
                     f"slots, roi.batch_per_image * roi.positive_fraction; 0 takes them all), got {count}")
  return count or slots
