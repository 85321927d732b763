"""ResNeXt (``model.num_groups`` / ``model.width_per_group``): grouped 3x3 convs in the bottlenecks, the
widths Detectron2's NUM_GROUPS / WIDTH_PER_GROUP give, the refusal for basic blocks, one training step of
a tiny ResNeXt-C4 Mask R-CNN and one of the from-scratch X101-32x8d-FPN preset on a tiny canvas."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mrcnn_jax import build_model, configs
from mrcnn_jax.configs import tiny
from mrcnn_jax.model.resnet import ConvNorm, ResNet

TINY_RESNEXT = {"backbone": "resnet50", "num_groups": 4, "width_per_group": 4}  # res2: 16 wide, 4 groups


def test_grouped_conv_is_one_conv_per_group():
  conv = ConvNorm(8, 12, 3, norm="frozen_bn", relu=False, groups=4, rngs=nnx.Rngs(0))
  kernel = conv.conv.kernel[...]                                           # [3,3,8/4,12]
  assert kernel.shape == (3, 3, 2, 12)
  x = jax.random.normal(jax.random.key(1), (1, 5, 5, 8))
  per_group = [jax.lax.conv_general_dilated(x[..., 2 * g:2 * g + 2], kernel[..., 3 * g:3 * g + 3], (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) for g in range(4)]
  np.testing.assert_allclose(conv.conv(x), jnp.concatenate(per_group, axis=-1), atol=1e-5)


def test_widths_follow_num_groups_and_width_per_group():
  x101 = nnx.eval_shape(lambda: ResNet("resnet101", norm="frozen_bn", num_groups=32, width_per_group=8,
                                       rngs=nnx.Rngs(0)))
  for stage, bottleneck, out in (("res2", 256, 256), ("res3", 512, 512), ("res4", 1024, 1024), ("res5", 2048, 2048)):
    block = getattr(x101, stage)[1]
    assert block.conv1.conv.kernel.shape == (1, 1, out, bottleneck)
    assert block.conv2.conv.kernel.shape == (3, 3, bottleneck // 32, bottleneck)   # Detectron2: [C, C/32, 3, 3]
    assert block.conv3.conv.kernel.shape == (1, 1, bottleneck, out)
  assert len(x101.res4) == 23 and dict(x101.out_channels) == {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}


@pytest.mark.parametrize("depth,groups,per_group,match", [
    ("resnet18", 2, 0, "needs bottleneck blocks"),
    ("resnet50", 3, 0, r"num_groups \(3\) must be >= 1 and divide the bottleneck width \(8\)"),
    ("resnet50", 0, 4, "must be >= 1"),
])
def test_bad_groups_are_refused(depth, groups, per_group, match):
  with pytest.raises(ValueError, match=match):
    ResNet(depth, width=8, num_groups=groups, width_per_group=per_group, rngs=nnx.Rngs(0))


def x101_fpn_on_a_tiny_canvas():
  """x101_fpn_coco at its own widths (GroupNorm, from scratch) with the tiny preset's canvas (64 px) and
  RoI counts, 3 classes."""
  counts = {k: v for k, v in tiny.OVERRIDES.items()
            if not k.startswith(("model.width", "model.fpn_channels", "model.roi.fc_dim", "model.mask."))}
  return configs.override(configs.get("x101_fpn_coco"), {**counts, "num_classes": 3})


@pytest.mark.parametrize("name", ["tiny ResNeXt-C4", "X101-32x8d-FPN preset"])
def test_resnext_trains_one_step(name, make_config, make_batch, train_step):
  """One step moves the last grouped conv: of res5 in a tiny ResNeXt C4's RoI heads (res2 16 wide, 4
  groups), of res4 in the X101-32x8d-FPN preset."""
  if name == "tiny ResNeXt-C4":
    model = build_model(make_config(head="c4", **TINY_RESNEXT, **{"roi.pooler_resolution": 14}))
    conv, shape = model.roi_heads.res5[0].conv2.conv, (3, 3, 128 // 4, 128)       # 16 x 2^3 wide
  else:
    model = build_model(x101_fpn_on_a_tiny_canvas())
    conv, shape = model.backbone.bottom_up.res4[22].conv2.conv, (3, 3, 1024 // 32, 1024)  # 8 x 32 x 4 wide
  assert conv.kernel.shape == shape
  optimizer = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)
  before = np.asarray(conv.kernel[...])
  losses, grads = train_step(model, optimizer, make_batch(model.config, batch_size=1), jax.random.key(0))
  assert all(np.isfinite(float(v)) for v in losses.values()), losses
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert not np.array_equal(before, conv.kernel[...])
