"""Feature Pyramid Network: a ResNet's res2..res5 -> P2..P6 (strides 4..64), all with ``channels`` channels.

Lateral 1x1 convs, nearest-neighbour top-down upsampling, a 3x3 output conv per level, and P6 as a
stride-2 subsampling of P5 (used by the RPN only), as in Lin et al. (2017) and Detectron2. With
``norm`` ("group") every conv is followed by GroupNorm (Detectron2's FPN.NORM, used from scratch).
Parameter names are Detectron2's: ``bottom_up`` (the ResNet), ``fpn_lateral{2..5}``, ``fpn_output{2..5}``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from mrcnn_jax.model.resnet import ResNet, head_conv

LEVELS = (2, 3, 4, 5)


def upsample2x(x: jax.Array, like: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling of [B,h,w,C], cropped to ``like``'s spatial size."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x[:, :like.shape[1], :like.shape[2]]


class FPN(nnx.Module):

  def __init__(self, bottom_up: ResNet, channels: int = 256, *, norm: str = "", dtype=None, rngs: nnx.Rngs):
    """bottom_up: a ResNet through res5. norm: "" (convs with bias) or a ``resnet.make_norm`` kind."""
    self.bottom_up = bottom_up
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")  # kaiming_uniform(a=1)
    conv = functools.partial(head_conv, cout=channels, norm=norm, kernel_init=init, dtype=dtype, rngs=rngs)
    for level in LEVELS:
      setattr(self, f"fpn_lateral{level}", conv(bottom_up.out_channels[f"res{level}"], kernel=1))
    for level in LEVELS:
      setattr(self, f"fpn_output{level}", conv(channels, kernel=3))
    self.channels = channels

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """x [B,H,W,3] normalised pixels -> {"p2": [B,H/4,W/4,C], ..., "p6": [B,H/64,W/64,C]}."""
    features = self.bottom_up(x)
    laterals = [getattr(self, f"fpn_lateral{level}")(features[f"res{level}"]) for level in LEVELS]
    top_down = [laterals[-1]]
    for lateral in reversed(laterals[:-1]):
      top_down.insert(0, lateral + upsample2x(top_down[0], lateral))
    pyramid = {f"p{level}": getattr(self, f"fpn_output{level}")(x) for level, x in zip(LEVELS, top_down)}
    pyramid["p6"] = pyramid["p5"][:, ::2, ::2]  # max-pool k=1, s=2
    return pyramid
