"""The FPN / C5 box head: RoI features -> one vector per RoI (Detectron2's FastRCNNConvFCHead, 2 FC).

C4 has no box head of its own: ``roi_heads.Res5ROIHeads`` runs res5 on the RoI features instead.
"""

from __future__ import annotations

import jax
from flax import nnx


class TwoFCHead(nnx.Module):
  """flatten [N,S,S,C] -> ``fc1`` -> ReLU -> ``fc2`` -> ReLU -> [N,fc_dim]."""

  def __init__(self, in_features: int, fc_dim: int = 1024, *, dtype=None, rngs: nnx.Rngs):
    init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")
    self.fc1 = nnx.Linear(in_features, fc_dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.fc2 = nnx.Linear(fc_dim, fc_dim, kernel_init=init, dtype=dtype, rngs=rngs)
    self.out_features = fc_dim

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    return nnx.relu(self.fc2(nnx.relu(self.fc1(x))))
