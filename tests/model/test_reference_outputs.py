"""Behaviour pin: a config and seed give the same losses and detections as when the reference was
recorded (tests/model/reference_outputs.npz), whatever the model's module structure.

The reference was recorded before the model was split into backbone / RPN / RoI-head modules; a
restructuring that changes a loss, a detection or the set of parameter shapes fails here. Rerecord
(``MRCNN_RECORD_REFERENCE=1 pytest tests/model/test_reference_outputs.py``) only for an intended
change of behaviour, and say so in the commit.
"""

import os

import jax
import numpy as np
import pytest
from flax import nnx

from mrcnn_jax import build_model
from tolerance import network_rtol

REFERENCE = os.path.join(os.path.dirname(__file__), "reference_outputs.npz")
CASES = {
    "fpn": {},
    "c4": {"head": "c4", "roi.pooler_resolution": 14, "anchor_sizes": (8, 16, 32)},
    "c5_mask_cap": {"head": "c5", "anchor_sizes": (16, 32, 64), "mask.rois_per_image": 2},
    "mlp_softmax": {"mask_head": "mlp", "mask_loss": "softmax"},
}


def outputs(model, batch, jit_losses, jit_detect) -> dict[str, np.ndarray]:
  """Losses, detections and the sorted parameter shapes of a freshly built model."""
  losses = jit_losses(model, batch, jax.random.key(7))
  det = jit_detect(model, batch["image"], batch["image_size"])
  shapes = sorted(tuple(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  out = {f"loss/{k}": np.asarray(v) for k, v in losses.items()}
  out.update({f"detect/{k}": np.asarray(v) for k, v in det.items()})
  out["param_shapes"] = np.asarray([str(s) for s in shapes])
  return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_the_recorded_reference(make_config, make_batch, jit_losses, jit_detect, case):
  config = make_config(**CASES[case])
  model = build_model(config, seed=0)
  got = outputs(model, make_batch(config, batch_size=2, num_instances=3, seed=3), jit_losses, jit_detect)
  if os.environ.get("MRCNN_RECORD_REFERENCE"):
    recorded = dict(np.load(REFERENCE)) if os.path.exists(REFERENCE) else {}
    recorded.update({f"{case}/{k}": v for k, v in got.items()})
    np.savez_compressed(REFERENCE, **recorded)
  reference = np.load(REFERENCE)
  keys = sorted(k[len(case) + 1:] for k in reference.files if k.startswith(case + "/"))
  assert keys == sorted(got), (keys, sorted(got))
  assert got["detect/valid"].any(), "the reference case should detect something"
  tol = network_rtol(model)  # the reference may come from another CPU: sums added in another order
  for key in keys:
    want = reference[f"{case}/{key}"]
    if want.dtype.kind in "biuU":
      np.testing.assert_array_equal(got[key], want, err_msg=key)
    else:
      np.testing.assert_allclose(got[key], want, rtol=tol, atol=tol, err_msg=key)
