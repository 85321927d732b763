"""``python serve_stablehlo.py MODEL.stablehlo IN.npz OUT.npz``: calls an exported model on IN's "images"
with JAX and numpy alone (importing mrcnn_jax or Flax fails here) and saves its outputs to OUT."""

import sys

for blocked in ("mrcnn_jax", "flax"):
  sys.modules[blocked] = None  # an import of it now raises ImportError

import jax  # noqa: E402
import numpy as np  # noqa: E402

with open(sys.argv[1], "rb") as f:
  exported = jax.export.deserialize(f.read())
np.savez(sys.argv[3], **jax.device_get(exported.call(np.load(sys.argv[2])["images"])))
