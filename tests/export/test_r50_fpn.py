"""Export parity on the R50-FPN config (random weights, 64 px canvas): StableHLO and SavedModel, each in
a process without mrcnn_jax, give ``predict``'s detections."""

import numpy as np

import mrcnn_jax
from export_checks import run_artifact, same_detections
from mrcnn_jax import configs
from mrcnn_jax.export import export_model


def test_r50_fpn_exports_equal_predict(tmp_path):
  config = configs.override(configs.get("r50_fpn_coco"), {"data.canvas": 64, "data.min_size": 64,
                                                          "data.max_size": 64})
  model = mrcnn_jax.build_model(config)
  images = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3)).astype(np.uint8)  # kept as is
  expected = mrcnn_jax.predict(model, images)
  assert int(expected.num_detections[0]) > 0
  paths = export_model(model, str(tmp_path / "exported"))
  for fmt in ("stablehlo", "savedmodel"):
    (tmp_path / fmt).mkdir()
    same_detections(run_artifact(f"serve_{fmt}.py", paths[fmt], images, tmp_path / fmt), expected)
