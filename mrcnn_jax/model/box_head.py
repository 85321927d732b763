"""Box heads (RoI features -> one vector per RoI) and the class/box predictor.

* ``TwoFCHead`` (FPN): flatten 7x7xC -> FC -> ReLU -> FC -> ReLU.
* ``Res5Head`` (C4): ResNet stage 5 on 14x14 RoI features (stride 2 -> 7x7), then the spatial mean for
  the box branch; its 7x7 map also feeds the C4 mask head (``mask_head.C4MaskHead``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mrcnn_jax.model.resnet import make_stage


class TwoFCHead(nnx.Module):

  def __init__(self, in_features: int, fc_dim: int = 1024, *, dtype=None, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")
    self.fc1 = nnx.Linear(in_features, fc_dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(fc_dim, fc_dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.out_features = fc_dim

  def __call__(self, x: jax.Array) -> tuple[jax.Array, None]:
    """x [N,S,S,C] -> ([N,fc_dim], None): no spatial map to share with the mask branch."""
    x = x.reshape(x.shape[0], -1)
    return nnx.relu(self.fc2(nnx.relu(self.fc1(x)))), None


class Res5Head(nnx.Module):

  def __init__(self, backbone: str, width: int, norm: str, *, dtype=None, rngs: nnx.Rngs):
    self.res5 = make_stage(backbone, 5, width=width, norm=norm, dtype=dtype, rngs=rngs)
    self.out_features = self.res5.out_channels

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [N,14,14,C4] -> (pooled [N,C5], res5 map [N,7,7,C5])."""
    y = self.res5(x)
    return y.mean(axis=(1, 2)), y


class BoxPredictor(nnx.Module):
  """Class logits (K+1, background = 0) and class-specific box deltas (K x 4)."""

  def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
    self.cls = nnx.Linear(in_features, num_classes + 1, kernel_init=nnx.initializers.normal(0.01), rngs=rngs)
    self.box = nnx.Linear(in_features, 4 * num_classes, kernel_init=nnx.initializers.normal(0.001), rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [N,F] -> logits [N,K+1], deltas [N,K,4], both float32."""
    x = x.astype(jnp.float32)
    return self.cls(x), self.box(x).reshape(x.shape[0], self.num_classes, 4)
