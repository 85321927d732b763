"""Mask R-CNN: normalise -> ``backbone`` (ResNet + FPN, or ResNet alone) -> ``proposal_generator`` (RPN)
-> ``roi_heads`` (box and mask branches), Detectron2's GeneralizedRCNN in static shapes.

``MaskRCNN.losses`` is the training forward pass (a dict of named scalar losses); ``MaskRCNN.detect``
is inference on the fixed canvas. Both are pure functions of the module state and jit as they are.

Heads (``config.model.head``): "fpn" (P2-P6, 2-FC box head, FCN mask head: the paper's best),
"c4" (res4 at stride 16: RoIs pooled from res4 and run through res5, as in Faster R-CNN) and "c5"
(res5 at stride 32: 2-FC box head and FCN mask head, the stride-32 setting of Table 2d).

Batch fields and shapes: ``mrcnn_jax.data.batch_spec``. B images on a canvas of any (h, w), each a
multiple of 32 (``mrcnn_jax.data.canvas``): one compiled program per canvas shape. Outside each image's
``image_size`` the canvas is ``config.model.padding``: black (normalised zeros of the uint8 canvas), or
zeros after normalising (Detectron2's ``ImageList`` and torchvision's ``batch_images``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from mrcnn_jax.model.fpn import FPN
from mrcnn_jax.model.pooling import POOLERS
from mrcnn_jax.model.resnet import ResNet
from mrcnn_jax.model.roi_heads import Res5ROIHeads, StandardROIHeads
from mrcnn_jax.model.rpn import RPN

SINGLE_LEVEL_STRIDE = {"c4": 16, "c5": 32}  # heads that pool from one feature map
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
RPN_LEVELS = ("p2", "p3", "p4", "p5", "p6")
PADDINGS = ("black", "normalized")
CANVAS_STRIDE = 32  # canvas sides are multiples of it (the coarsest stride the FPN halves exactly)


class MaskRCNN(nnx.Module):

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    m = config.model
    if m.head not in ("fpn", "c4", "c5"):
      raise ValueError(f"config.model.head must be 'fpn', 'c4' or 'c5', got {m.head!r}")
    if m.dtype not in DTYPES:
      raise ValueError(f"config.model.dtype must be one of {sorted(DTYPES)}, got {m.dtype!r}")
    if m.input_format not in ("RGB", "BGR"):
      raise ValueError(f"config.model.input_format must be 'RGB' or 'BGR', got {m.input_format!r}")
    if m.pooler not in POOLERS:
      raise ValueError(f"config.model.pooler must be one of {sorted(POOLERS)}, got {m.pooler!r}")
    if config.num_classes < 1:
      raise ValueError("config.num_classes must be at least 1, got "
                       f"{config.num_classes} (0 means: taken from the dataset, which training and evaluation do)")
    if m.padding not in PADDINGS:
      raise ValueError(f"config.model.padding must be one of {PADDINGS}, got {m.padding!r}")
    self.config = config = ml_collections.FrozenConfigDict(config)  # hashable: submodules keep parts of it
    m, dtype = config.model, DTYPES[m.dtype]
    stride = SINGLE_LEVEL_STRIDE.get(m.head)
    bottom_up = ResNet(m.backbone, width=m.width, norm=m.norm, stride_in_1x1=m.stride_in_1x1,
                       last_stage=4 if m.head == "c4" else 5, dtype=dtype, rngs=rngs)
    if m.head == "fpn":
      self.backbone = FPN(bottom_up, m.fpn_channels, norm=m.head_norm, dtype=dtype, rngs=rngs)
      channels = m.fpn_channels
    else:
      self.backbone = bottom_up
      channels = bottom_up.out_channels[self._single_level()]
    self.proposal_generator = RPN(m.rpn, channels, stride=stride,
                                  anchor_sizes=m.anchor_sizes, anchor_ratios=m.anchor_ratios,
                                  round_anchors=m.round_anchors, dtype=dtype, rngs=rngs)
    if m.head == "c4":
      self.roi_heads = Res5ROIHeads(config, stride, dtype=dtype, rngs=rngs)
    else:
      self.roi_heads = StandardROIHeads(config, channels, stride, dtype=dtype, rngs=rngs)

  def _single_level(self) -> str:
    return {"c4": "res4", "c5": "res5"}[self.config.model.head]

  def normalize_pixels(self, image: jax.Array) -> jax.Array:
    """uint8 RGB pixels [...,3] -> float32 (x - pixel_mean) / pixel_std, flipped to BGR first when
    ``model.input_format`` is "BGR" (Detectron2's weights; ``pixel_mean`` / ``pixel_std`` in that order)."""
    m = self.config.model
    if m.input_format == "BGR":
      image = image[..., ::-1]
    return (image.astype(jnp.float32) - jnp.asarray(m.pixel_mean)) / jnp.asarray(m.pixel_std)

  def normalize(self, image: jax.Array, image_size: jax.Array | None = None) -> jax.Array:
    """image [B,H,W,3] uint8 RGB canvas, each image's content filling its image_size [B,2] (h, w; None:
    the whole canvas) -> the backbone's float32 input, ``model.padding`` outside the content."""
    x = self.normalize_pixels(_check_canvas(image))
    if self.config.model.padding == "normalized" and image_size is not None:
      rows, cols = jnp.arange(image.shape[1]), jnp.arange(image.shape[2])
      inside = ((rows[None, :, None] < image_size[:, 0, None, None])
                & (cols[None, None, :] < image_size[:, 1, None, None]))
      x = jnp.where(inside[..., None], x, 0.0)
    return x

  def features(self, image: jax.Array, image_size: jax.Array | None = None):
    """image [B,H,W,3] uint8 canvas (as ``normalize``) -> (RPN feature maps: a list, RoI-pooling
    features: a list or one map)."""
    return self.backbone_features(self.normalize(image, image_size))

  def backbone_features(self, x: jax.Array):
    """x [B,H,W,3] normalised float canvas, H and W multiples of 32 -> ``features``'s pair."""
    features = self.backbone(_check_canvas(x).astype(DTYPES[self.config.model.dtype]))
    if self.config.model.head == "fpn":
      pyramid = [features[name] for name in RPN_LEVELS]
      return pyramid, pyramid[:4]
    single = features[self._single_level()]
    return [single], single

  def losses(self, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """Training losses for a batch (``mrcnn_jax.data.batch_spec``) -> named float32 scalars."""
    rpn_features, pool_features = self.features(batch["image"], batch["image_size"])
    logits, deltas = self.proposal_generator(rpn_features)
    rpn_key, roi_key = jax.random.split(key)
    losses = self.proposal_generator.losses(logits, deltas, batch, rpn_key)
    proposals, valid = self.proposal_generator.proposals(logits, deltas, batch["image_size"],
                                                         batch["image"].shape[1:3], training=True)
    return {**losses, **self.roi_heads.losses(pool_features, proposals, valid, batch, roi_key)}

  def detect(self, image: jax.Array, image_size: jax.Array, score_threshold=None,
             nms_threshold=None) -> dict[str, jax.Array]:
    """Detections on the canvas for image [B,H,W,3] uint8 whose content fills image_size [B,2] (h, w).

    ``score_threshold`` / ``nms_threshold`` default to the config's (they may be traced scalars).
    Returns boxes [B,D,4] (canvas pixels), scores [B,D], classes [B,D] (1..K), masks [B,D,M,M]
    (foreground probabilities in the box), valid [B,D].
    """
    return self.detect_normalized(self.normalize(image, image_size), image_size, score_threshold, nms_threshold)

  def detect_normalized(self, x: jax.Array, image_size: jax.Array, score_threshold=None,
                        nms_threshold=None) -> dict[str, jax.Array]:
    """``detect`` on the backbone's input x [B,H,W,3] (normalised float canvas, padding included)."""
    roi = self.config.model.roi
    rpn_features, pool_features = self.backbone_features(x)
    logits, deltas = self.proposal_generator(rpn_features)
    proposals, valid = self.proposal_generator.proposals(logits, deltas, image_size, x.shape[1:3],
                                                         training=False)
    return self.roi_heads.detect(
        pool_features, proposals, valid, image_size,
        roi.score_threshold if score_threshold is None else score_threshold,
        roi.nms_threshold if nms_threshold is None else nms_threshold)


def _check_canvas(image: jax.Array) -> jax.Array:
  if image.ndim != 4 or image.shape[-1] != 3 or any(side % CANVAS_STRIDE for side in image.shape[1:3]):
    raise ValueError(f"image must be [B,H,W,3] with H and W multiples of {CANVAS_STRIDE}, got {image.shape}")
  return image


def build_model(config: ml_collections.ConfigDict, seed: int = 0) -> MaskRCNN:
  """A freshly initialised Mask R-CNN for ``config``."""
  return MaskRCNN(config, rngs=nnx.Rngs(seed))
