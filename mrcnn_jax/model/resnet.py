"""ResNet backbones (18/34 basic blocks, 50/101 bottlenecks) and ResNeXt (bottlenecks whose 3x3 conv is
grouped), with GroupNorm or frozen BatchNorm.

Input  [B, H, W, 3] float (normalised pixels).  Output: a dict ``{"res2": ..., "res5": ...}`` of NHWC
feature maps at strides 4, 8, 16, 32; ``last_stage`` limits how deep the trunk goes (C4 stops at res4
and runs res5 inside its RoI heads, see ``roi_heads.Res5ROIHeads``).

Parameter names follow Detectron2's: ``stem``, ``res2``..``res5`` (lists of blocks), and in each block
``conv1``..``conv3`` and ``shortcut``, each a conv with its ``norm``. ResNeXt as Detectron2's
``NUM_GROUPS`` / ``WIDTH_PER_GROUP``: res2's bottlenecks are ``num_groups * width_per_group`` wide (doubling
per stage) with a 3x3 conv of ``num_groups`` groups; the stage outputs stay the ResNet's (``width`` x 4 x
2^(stage-2)). X101-32x8d: ``resnet101``, 32 groups of 8.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

STAGE_NAMES = ("res2", "res3", "res4", "res5")


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
  block: str          # "basic" | "bottleneck"
  depths: tuple[int, int, int, int]


RESNETS = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3)),
}


class FrozenBatchNorm(nnx.Module):
  """BatchNorm with fixed statistics and affine terms (for imported ImageNet weights).

  Its four tensors are ``nnx.BatchStat`` variables, not parameters: the optimizer never sees them.
  """

  def __init__(self, num_features: int, epsilon: float = 1e-5):
    self.scale = nnx.BatchStat(jnp.ones((num_features,)))
    self.bias = nnx.BatchStat(jnp.zeros((num_features,)))
    self.mean = nnx.BatchStat(jnp.zeros((num_features,)))
    self.var = nnx.BatchStat(jnp.ones((num_features,)))
    self.epsilon = epsilon

  def __call__(self, x: jax.Array) -> jax.Array:
    multiplier = self.scale[...] * jax.lax.rsqrt(self.var[...] + self.epsilon)
    offset = self.bias[...] - self.mean[...] * multiplier
    return x * multiplier.astype(x.dtype) + offset.astype(x.dtype)


def make_norm(kind: str, num_features: int, rngs: nnx.Rngs, dtype=None) -> nnx.Module:
  """GroupNorm (32 groups, fewer for narrow layers) or FrozenBatchNorm."""
  if kind == "group":
    groups = min(32, num_features)
    while num_features % groups:
      groups //= 2
    return nnx.GroupNorm(num_features, num_groups=groups, epsilon=1e-5, dtype=dtype, rngs=rngs)
  if kind == "frozen_bn":
    return FrozenBatchNorm(num_features)
  raise ValueError(f"norm must be 'group' or 'frozen_bn', got {kind!r}")


class ConvNorm(nnx.Module):
  """Conv (no bias, ``groups`` feature groups) followed by a norm layer; ``relu`` optional."""

  def __init__(self, cin, cout, kernel, stride=1, *, norm, relu=True, groups=1, dtype=None, rngs,
               kernel_init=nnx.initializers.variance_scaling(2.0, "fan_out", "normal")):
    pad = kernel // 2
    self.conv = nnx.Conv(cin, cout, (kernel, kernel), (stride, stride), padding=((pad, pad), (pad, pad)),
                         feature_group_count=groups, use_bias=False, dtype=dtype, rngs=rngs,
                         kernel_init=kernel_init)
    self.norm = make_norm(norm, cout, rngs, dtype)
    self.relu = relu

  def __call__(self, x):
    x = self.norm(self.conv(x))
    return nnx.relu(x) if self.relu else x


def head_conv(cin, cout, kernel, *, norm: str, kernel_init, dtype=None, rngs) -> nnx.Module:
  """A head's kxk conv ("SAME", no activation): with a bias when ``norm`` is "", else bias-free and
  normalised (``make_norm`` kinds), as Detectron2's FPN.NORM / ROI_MASK_HEAD.NORM switch it."""
  if norm:
    return ConvNorm(cin, cout, kernel, norm=norm, relu=False, dtype=dtype, rngs=rngs, kernel_init=kernel_init)
  return nnx.Conv(cin, cout, (kernel, kernel), kernel_init=kernel_init, dtype=dtype, rngs=rngs)


class ResidualBlock(nnx.Module):
  """relu(conv1..convN(x) + shortcut(x)); the shortcut is a strided 1x1 ConvNorm when the shape changes.

  Subclasses give ``expansion`` (output channels = width * expansion) and ``layers``, the branch.
  ``stride_in_1x1``: a bottleneck strides in its first 1x1 conv (Detectron2's STRIDE_IN_1X1, MSRA
  weights) instead of its 3x3. ``bottleneck``: a bottleneck's inner channels (0: ``width``), its 3x3
  conv in ``groups`` groups (ResNeXt).
  """
  expansion = 1

  def __init__(self, cin, width, stride, *, norm, stride_in_1x1=False, bottleneck=0, groups=1, dtype=None, rngs):
    cout = width * self.expansion
    layers = self.layers(cin, bottleneck or width, cout, stride, stride_in_1x1, groups, norm=norm, dtype=dtype,
                         rngs=rngs)
    self.depth = len(layers)
    for i, layer in enumerate(layers, 1):
      setattr(self, f"conv{i}", layer)
    self.shortcut = (ConvNorm(cin, cout, 1, stride, norm=norm, relu=False, dtype=dtype, rngs=rngs)
                     if stride != 1 or cin != cout else None)

  def __call__(self, x):
    residual = x if self.shortcut is None else self.shortcut(x)
    for i in range(1, self.depth + 1):
      x = getattr(self, f"conv{i}")(x)
    return nnx.relu(x + residual)


class BasicBlock(ResidualBlock):
  """3x3 -> 3x3 (ResNet-18/34; no 1x1 conv, so ``stride_in_1x1`` does not apply; no groups)."""
  expansion = 1

  @staticmethod
  def layers(cin, width, cout, stride, stride_in_1x1, groups, **kw):  # pylint: disable=unused-argument
    return [ConvNorm(cin, width, 3, stride, **kw), ConvNorm(width, cout, 3, relu=False, **kw)]


class Bottleneck(ResidualBlock):
  """1x1 -> 3x3 (``groups`` groups: ResNeXt) -> 1x1, expansion 4 (ResNet-50/101); the stride sits on the
  3x3 (torchvision's and Detectron2's code default) or, with ``stride_in_1x1``, on the first 1x1 (MSRA /
  Detectron2 zoo weights)."""
  expansion = 4

  @staticmethod
  def layers(cin, width, cout, stride, stride_in_1x1, groups, **kw):
    stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
    return [ConvNorm(cin, width, 1, stride_1x1, **kw), ConvNorm(width, width, 3, stride_3x3, groups=groups, **kw),
            ConvNorm(width, cout, 1, relu=False, **kw)]


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stage(depth_name: str, stage: int, *, width: int, norm: str, stride_in_1x1: bool = False,
               stage_width: int = 0, num_groups: int = 1, width_per_group: int = 0, dtype=None, rngs) -> nnx.List:
  """The residual blocks of stage ``stage`` (2..5) of ``depth_name``; the first one strides (but in res2).

  A plain list, run with ``run_stage``; C4's RoI heads build res5 on its own with this. ``stage_width``:
  the blocks' width (0: the ResNet's own, ``width`` x 2^(stage-2)); their input stays the previous stage's.
  ``num_groups`` / ``width_per_group``: ResNeXt (see the module docstring; width_per_group 0: a ResNet).
  """
  spec = RESNETS[depth_name]
  block_cls = BLOCKS[spec.block]
  bottleneck = stage_width or (num_groups * width_per_group or width) * 2 ** (stage - 2)
  if num_groups < 1 or width_per_group < 0 or bottleneck % num_groups:
    raise ValueError(f"num_groups ({num_groups}) must be >= 1 and divide the bottleneck width ({bottleneck}); "
                     f"width_per_group ({width_per_group}) >= 0")
  if num_groups > 1 and spec.block != "bottleneck":
    raise ValueError(f"num_groups > 1 (ResNeXt) needs bottleneck blocks, not {depth_name}'s {spec.block} blocks")
  stage_width = _block_width(stage, width, stage_width)
  cin = width if stage == 2 else stage_channels(depth_name, stage - 1, width)  # previous stage's output
  stride = 1 if stage == 2 else 2
  blocks = []
  for i in range(spec.depths[stage - 2]):
    blocks.append(block_cls(cin, stage_width, stride if i == 0 else 1, norm=norm, stride_in_1x1=stride_in_1x1,
                            bottleneck=bottleneck, groups=num_groups, dtype=dtype, rngs=rngs))
    cin = stage_width * block_cls.expansion
  return nnx.List(blocks)


def _block_width(stage: int, width: int, stage_width: int = 0) -> int:
  """The width of stage ``stage``'s blocks: ``stage_width``, or the ResNet's own (0)."""
  return stage_width or width * 2 ** (stage - 2)


def stage_channels(depth_name: str, stage: int, width: int, stage_width: int = 0) -> int:
  """Output channels of stage ``stage`` (2..5), of the ``make_stage`` with these arguments."""
  return _block_width(stage, width, stage_width) * BLOCKS[RESNETS[depth_name].block].expansion


def run_stage(blocks: nnx.List, x: jax.Array) -> jax.Array:
  for block in blocks:
    x = block(x)
  return x


class ResNet(nnx.Module):
  """Stem (7x7/2 conv + 3x3/2 max-pool) and stages res2..res{last_stage}; ``num_groups`` and
  ``width_per_group`` make it a ResNeXt (``make_stage``)."""

  def __init__(self, depth_name: str, *, width: int = 64, norm: str = "group", stride_in_1x1: bool = False,
               num_groups: int = 1, width_per_group: int = 0, last_stage: int = 5, dtype=None, rngs: nnx.Rngs):
    if depth_name not in RESNETS:
      raise ValueError(f"backbone must be one of {sorted(RESNETS)}, got {depth_name!r}")
    self.stem = ConvNorm(3, width, 7, 2, norm=norm, dtype=dtype, rngs=rngs)
    self.stage_names = STAGE_NAMES[:last_stage - 1]
    for stage, name in enumerate(self.stage_names, 2):
      setattr(self, name, make_stage(depth_name, stage, width=width, norm=norm, stride_in_1x1=stride_in_1x1,
                                     num_groups=num_groups, width_per_group=width_per_group, dtype=dtype,
                                     rngs=rngs))
    self.out_channels = FrozenDict({name: stage_channels(depth_name, stage, width)  # hashable: static
                                    for stage, name in enumerate(self.stage_names, 2)})

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = self.stem(x)
    x = nnx.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    features = {}
    for name in self.stage_names:
      x = run_stage(getattr(self, name), x)
      features[name] = x
    return features
