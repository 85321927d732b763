"""Mask heads, the mask loss and mask probabilities at inference.

Heads map pooled RoI features to per-pixel logits [N,M,M,C]: C = K (class-specific), 1 (class-agnostic)
or K+1 (the softmax ablation, channel 0 = background).
* ``FCNMaskHead`` (FPN and C5, the paper's default): 14x14 -> 4 x (3x3 conv ``mask_fcn{i}``, ReLU) ->
  2x2/2 ``deconv``, ReLU -> 1x1 ``predictor``. With zero convs it is the C4 mask head (Detectron2's C4
  config): res5's 7x7 RoI map -> deconv -> predictor (14x14 masks).
* ``MLPMaskHead`` (Table 2e): flatten -> ``fc1`` -> ``fc2`` -> ``predictor`` to M*M*C.

The paper's decoupling: with the sigmoid loss only the ground-truth class's channel is trained, so
classes do not compete; the classification branch picks the channel at inference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mrcnn_jax.model.resnet import head_conv

_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def mask_channels(num_classes: int, loss: str, mode: str) -> int:
  """Number of predicted mask channels for a loss ("sigmoid"|"softmax") and mode."""
  if loss not in ("sigmoid", "softmax"):
    raise ValueError(f"mask_loss must be 'sigmoid' or 'softmax', got {loss!r}")
  if mode not in ("class_specific", "agnostic"):
    raise ValueError(f"mask_mode must be 'class_specific' or 'agnostic', got {mode!r}")
  if loss == "softmax":
    if mode == "agnostic":
      raise ValueError("mask_loss='softmax' competes across classes and needs mask_mode='class_specific'")
    return num_classes + 1
  return num_classes if mode == "class_specific" else 1


class Deconv2x(nnx.Module):
  """2x2 stride-2 transposed convolution written as one matmul and a depth-to-space reshape.

  With stride equal to kernel size the output blocks do not overlap: out[2i+a, 2j+b] =
  x[i, j] @ kernel[a, b] + bias, the layout of PyTorch's ConvTranspose2d weight [Cin, Cout, a, b]
  transposed to [a, b, Cin, Cout].  Same maths as a transposed conv, but its gradient is a plain
  matmul (XLA:CPU's dilated-convolution gradient is ~20x slower).
  """

  def __init__(self, cin: int, cout: int, *, dtype=None, rngs: nnx.Rngs):
    self.kernel = nnx.Param(_conv_init(rngs.params(), (2, 2, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [N,H,W,Cin] -> [N,2H,2W,Cout]."""
    dtype = self.dtype or x.dtype
    y = jnp.einsum("nhwc,abcd->nhawbd", x.astype(dtype), self.kernel[...].astype(dtype))
    n, h, _, w, _, c = y.shape
    return y.reshape(n, 2 * h, 2 * w, c) + self.bias[...].astype(dtype)


class FCNMaskHead(nnx.Module):

  def __init__(self, cin: int, channels: int, *, dim: int = 256, num_convs: int = 4, norm: str = "",
               dtype=None, rngs: nnx.Rngs):
    """norm: "" (convs with bias, the paper's head) or "group" (GroupNorm after each conv)."""
    self.num_convs = num_convs
    for i in range(num_convs):
      setattr(self, f"mask_fcn{i + 1}", head_conv(cin if i == 0 else dim, dim, 3, norm=norm,
                                                   kernel_init=_conv_init, dtype=dtype, rngs=rngs))
    self.deconv = Deconv2x(dim if num_convs else cin, dim, dtype=dtype, rngs=rngs)
    self.predictor = nnx.Conv(dim, channels, (1, 1), kernel_init=nnx.initializers.normal(0.001), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [N,S,S,C] -> logits [N,2S,2S,channels] float32."""
    for i in range(self.num_convs):
      x = nnx.relu(getattr(self, f"mask_fcn{i + 1}")(x))
    return self.predictor(nnx.relu(self.deconv(x)).astype(jnp.float32))


class MLPMaskHead(nnx.Module):

  def __init__(self, in_features: int, channels: int, *, output_size: int = 28, dim: int = 1024,
               dtype=None, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")
    self.fc1 = nnx.Linear(in_features, dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(dim, dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.predictor = nnx.Linear(dim, output_size * output_size * channels,
                                kernel_init=nnx.initializers.normal(0.001), rngs=rngs)
    self.shape = (output_size, output_size, channels)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [N,S,S,C] -> logits [N,M,M,channels] float32."""
    x = nnx.relu(self.fc2(nnx.relu(self.fc1(x.reshape(x.shape[0], -1)))))
    return self.predictor(x.astype(jnp.float32)).reshape(x.shape[0], *self.shape)


def _channel(classes, num_channels):
  """The logit channel that holds each RoI's mask: class-1 (class-specific) or 0 (agnostic)."""
  return jnp.maximum(classes - 1, 0) if num_channels > 1 else jnp.zeros_like(classes)


def mask_loss(logits, targets, classes, valid, loss: str):
  """Mask loss over foreground RoIs.

  Args:
    logits [N,M,M,C]; targets [N,M,M] in {0,1}; classes [N] GT class (1..K); valid [N] bool.
    loss: "sigmoid" (BCE on the GT class's channel only: the paper's decoupled loss) or "softmax"
      (per-pixel multinomial over background + K classes: the coupled FCN-style baseline).
  Returns:
    scalar: mean over valid RoIs' pixels (0 when there are none).
  """
  if loss == "softmax":
    labels = jnp.where(targets > 0.5, classes[:, None, None], 0)
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  else:
    channel = _channel(classes, logits.shape[-1])
    selected = jnp.take_along_axis(logits, channel[:, None, None, None], axis=-1)[..., 0]
    per_pixel = optax.sigmoid_binary_cross_entropy(selected, targets)
  pixels = valid.sum() * per_pixel.shape[1] * per_pixel.shape[2]
  return jnp.where(valid[:, None, None], per_pixel, 0.0).sum() / jnp.maximum(pixels, 1)


def mask_probabilities(logits, classes, loss: str):
  """logits [N,M,M,C], predicted classes [N] (1..K) -> foreground probabilities [N,M,M]."""
  if loss == "softmax":
    probs = jax.nn.softmax(logits, axis=-1)
    return jnp.take_along_axis(probs, classes[:, None, None, None], axis=-1)[..., 0]
  channel = _channel(classes, logits.shape[-1])
  return jax.nn.sigmoid(jnp.take_along_axis(logits, channel[:, None, None, None], axis=-1)[..., 0])
