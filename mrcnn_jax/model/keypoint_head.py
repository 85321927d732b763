"""The keypoint head (Keypoint R-CNN, the paper's section 5) and its loss.

``KRCNNConvDeconvUpsampleHead``, Detectron2's structure and names: S x S pooled RoI features (14) ->
``conv_fcn1..N`` (3x3 conv, 512, ReLU) -> ``score_lowres`` (ConvTranspose2d, kernel 4, stride 2,
padding 1: 2S) -> 2x bilinear upsampling (align_corners=False: 4S = 56) -> K heatmap logits per RoI.
Each keypoint is a one-hot 4S x 4S mask trained with a softmax over its positions
(``keypoint_loss``); targets and decoding: ``mrcnn_jax.ops.keypoints``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # Detectron2's (MSRAFill)
# Deconv4x4's output parity a in {0, 1} and input offset d in {-1, 0, 1} (index d + 1) -> the PyTorch
# kernel tap k = a + 1 - 2d that joins them (out[2m + a] = sum_d x[m + d] w[a + 1 - 2d]), as one-hots.
_TAPS = np.zeros((3, 2, 4), np.float32)
for _d in range(3):
  for _a in range(2):
    if 0 <= _a + 3 - 2 * _d <= 3:
      _TAPS[_d, _a, _a + 3 - 2 * _d] = 1.0


class Deconv4x4(nnx.Module):
  """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1) as a 3x3 conv to 4 x Cout channels and a
  depth-to-space reshape (each output parity reads 2 x 2 of the 3 x 3 input neighbours): the same
  maths, with an ordinary conv's gradient (XLA:CPU's dilated-convolution gradient is slow).

  ``kernel`` [4,4,Cin,Cout] is PyTorch's weight [Cin,Cout,4,4] transposed; initialised as Detectron2's
  (He normal over PyTorch's fan_out of that weight, Cin x 16).
  """

  def __init__(self, cin: int, cout: int, *, dtype=None, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")  # fan_in of [4,4,Cin,Cout]: Cin x 16
    self.kernel = nnx.Param(init(rngs.params(), (4, 4, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [N,H,W,Cin] -> [N,2H,2W,Cout]."""
    dtype = self.dtype or x.dtype
    taps = jnp.asarray(_TAPS, dtype)
    kernel = jnp.einsum("dak,ebl,klio->deiabo", taps, taps, self.kernel[...].astype(dtype))
    n, h, w, _ = x.shape
    y = jax.lax.conv_general_dilated(x.astype(dtype), kernel.reshape(3, 3, x.shape[-1], -1), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = y.reshape(n, h, w, 2, 2, -1).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, -1)
    return y + self.bias[...].astype(dtype)


def upsample2x(x: jax.Array) -> jax.Array:
  """Bilinear 2x upsampling of x [N,H,W,C], PyTorch's align_corners=False: output 2m samples the input
  at m - 1/4, 2m + 1 at m + 1/4 (edges clamped) -> [N,2H,2W,C]."""
  for axis in (1, 2):
    n = x.shape[axis]
    take = lambda i: jnp.take(x, jnp.clip(jnp.arange(n) + i, 0, n - 1), axis=axis)
    pair = jnp.stack([0.25 * take(-1) + 0.75 * x, 0.75 * x + 0.25 * take(1)], axis=axis + 1)
    x = pair.reshape(*x.shape[:axis], 2 * n, *x.shape[axis + 1:])
  return x


class KRCNNConvDeconvUpsampleHead(nnx.Module):

  def __init__(self, cin: int, num_keypoints: int, *, dim: int = 512, num_convs: int = 8, dtype=None,
               rngs: nnx.Rngs):
    self.num_convs = num_convs
    for i in range(num_convs):
      setattr(self, f"conv_fcn{i + 1}", nnx.Conv(cin if i == 0 else dim, dim, (3, 3), kernel_init=_conv_init,
                                                 dtype=dtype, rngs=rngs))
    self.score_lowres = Deconv4x4(dim if num_convs else cin, num_keypoints, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [N,S,S,C] -> heatmap logits [N,4S,4S,K] float32."""
    for i in range(self.num_convs):
      x = nnx.relu(getattr(self, f"conv_fcn{i + 1}")(x))
    return upsample2x(self.score_lowres(x).astype(jnp.float32))


def keypoint_loss(logits, labels, valid):
  """Softmax cross-entropy over the M x M positions of each valid keypoint's map, summed and divided by
  the number of valid keypoints (Detectron2's default normaliser; 0 when there are none).

  logits [N,M,M,K]; labels [N,K] int32 flat positions (``ops.keypoint_targets``); valid [N,K] bool.
  """
  flat = jnp.moveaxis(logits, -1, 1).reshape(*labels.shape, -1)  # [N,K,M*M]
  ce = optax.softmax_cross_entropy_with_integer_labels(flat, labels)
  return jnp.where(valid, ce, 0.0).sum() / jnp.maximum(valid.sum(), 1)
