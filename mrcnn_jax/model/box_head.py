"""The FPN / C5 box head: RoI features -> one vector per RoI (Detectron2's FastRCNNConvFCHead).

``num_convs`` 3x3 convs (``conv1``..), then ``num_fc`` fully connected layers (``fc1``..), each with a
ReLU: 0 convs + 2 FC is the paper's head (Detectron2's default); 4 convs (normalised) + 1 FC is
torchvision's ``maskrcnn_resnet50_fpn_v2`` and Detectron2's GN configs. C4 has no box head of its own:
``roi_heads.Res5ROIHeads`` runs res5 on the RoI features instead.
"""

from __future__ import annotations

import jax
from flax import nnx

from mrcnn_jax.model.resnet import head_conv


class ConvFCHead(nnx.Module):
  """[N,S,S,C] -> convs (``norm``: "" for a bias, else a ``resnet.make_norm`` kind) -> flatten -> FCs ->
  [N,out_features]."""

  def __init__(self, channels: int, resolution: int, *, num_convs: int = 0, conv_dim: int = 256, num_fc: int = 2,
               fc_dim: int = 1024, norm: str = "", dtype=None, rngs: nnx.Rngs):
    conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
    fc_init = nnx.initializers.variance_scaling(1.0, "fan_in", "uniform")
    for i in range(num_convs):
      setattr(self, f"conv{i + 1}", head_conv(conv_dim if i else channels, conv_dim, 3, norm=norm,
                                              kernel_init=conv_init, dtype=dtype, rngs=rngs))
    features = (conv_dim if num_convs else channels) * resolution ** 2
    for i in range(num_fc):
      setattr(self, f"fc{i + 1}", nnx.Linear(fc_dim if i else features, fc_dim, kernel_init=fc_init, dtype=dtype,
                                             rngs=rngs))
    self.num_convs, self.num_fc = num_convs, num_fc
    self.out_features = fc_dim if num_fc else features

  def __call__(self, x: jax.Array) -> jax.Array:
    for i in range(self.num_convs):
      x = nnx.relu(getattr(self, f"conv{i + 1}")(x))
    x = x.reshape(x.shape[0], -1)
    for i in range(self.num_fc):
      x = nnx.relu(getattr(self, f"fc{i + 1}")(x))
    return x
