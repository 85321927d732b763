"""Feature Pyramid Network: res2..res5 -> P2..P6 (strides 4..64), all with ``channels`` channels.

Lateral 1x1 convs, nearest-neighbour top-down upsampling, a 3x3 output conv per level, and P6 as a
stride-2 subsampling of P5 (used by the RPN only), as in Lin et al. (2017) and Detectron2. With
``norm`` ("group") every conv is followed by GroupNorm (Detectron2's FPN.NORM, used from scratch).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from mrcnn_jax.model.resnet import STAGE_NAMES, head_conv


def upsample2x(x: jax.Array, like: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling of [B,h,w,C], cropped to ``like``'s spatial size."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x[:, :like.shape[1], :like.shape[2]]


class FPN(nnx.Module):

  def __init__(self, in_channels: tuple[int, ...], channels: int = 256, *, norm: str = "", dtype=None,
               rngs: nnx.Rngs):
    """in_channels: of res2..res5. norm: "" (convs with bias) or a ``resnet.make_norm`` kind."""
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")  # kaiming_uniform(a=1)
    conv = functools.partial(head_conv, cout=channels, norm=norm, kernel_init=init, dtype=dtype, rngs=rngs)
    self.lateral = nnx.List([conv(c, kernel=1) for c in in_channels])
    self.output = nnx.List([conv(channels, kernel=3) for _ in STAGE_NAMES])
    self.channels = channels

  def __call__(self, features: dict[str, jax.Array]) -> list[jax.Array]:
    """features: res2..res5 -> [P2, P3, P4, P5, P6]."""
    laterals = [conv(features[n]) for conv, n in zip(self.lateral, STAGE_NAMES)]
    top_down = [laterals[-1]]
    for lateral in reversed(laterals[:-1]):
      top_down.insert(0, lateral + upsample2x(top_down[0], lateral))
    pyramid = [conv(x) for conv, x in zip(self.output, top_down)]
    pyramid.append(pyramid[-1][:, ::2, ::2])  # P6: max-pool k=1, s=2
    return pyramid
