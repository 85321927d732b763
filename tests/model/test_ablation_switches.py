"""Each of the paper's ablation switches (and bf16, frozen BN) builds and runs a jitted train step.

Switches that touch different parts of the model share a step, so that the file compiles 6 train
steps rather than one per switch (each is ~30 s of compilation on 2 cores). Plain C4 trains in
tests/test_experiments.py (the ``r18_c4`` arm) and in tests/model/test_mask_rcnn.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mrcnn_jax import build_model

C4 = {"head": "c4", "roi.pooler_resolution": 14, "anchor_sizes": (8, 16, 32)}


@pytest.mark.parametrize("overrides", [
    {"pooler": "roi_pool", "mask_loss": "softmax"},
    {"pooler": "roi_warp", "mask_mode": "agnostic", "head_norm": "group"},
    {"roi.sampling_ratio": 0, "mask_head": "mlp", "dtype": "bfloat16"},
    {"roi.sampling_ratio": 0, **C4},
    {"head": "c5", "anchor_sizes": (16, 32, 64)},
    {"norm": "frozen_bn", "backbone": "resnet50"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_ablation_switches_build_and_step(train_step, jit_detect, make_config, make_batch, overrides):
  config = make_config(**overrides)
  model = build_model(config)
  batch = make_batch(config)
  optimizer = nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)
  losses, grads = train_step(model, optimizer, batch, jax.random.key(0))
  assert all(np.isfinite(float(v)) for v in losses.values()), losses
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  if "head" in overrides or "mask_head" in overrides:  # heads whose inference path differs
    det = jit_detect(model, batch["image"], batch["image_size"])
    m = 14 if config.model.head == "c4" else 28
    assert det["masks"].shape == (2, config.model.roi.detections_per_image, m, m)
  if overrides.get("dtype") == "bfloat16":
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("head_norm", ["", "group"])
def test_head_norm_switches_fpn_and_mask_convs(make_config, head_norm):
  model = nnx.eval_shape(lambda: build_model(make_config(head_norm=head_norm)))
  fpn, mask_head = model.backbone, model.roi_heads.mask_head
  convs = [getattr(fpn, f"fpn_{kind}{level}") for kind in ("lateral", "output") for level in (2, 3, 4, 5)]
  convs += [mask_head.mask_fcn1, mask_head.mask_fcn2]
  assert len(convs) == 4 + 4 + 2
  for conv in convs:
    if head_norm:
      assert isinstance(conv.norm, nnx.GroupNorm) and conv.conv.bias is None
    else:
      assert isinstance(conv, nnx.Conv) and conv.bias is not None
