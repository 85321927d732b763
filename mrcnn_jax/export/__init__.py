"""Export a trained model for serving: StableHLO (``jax.export``) and TensorFlow SavedModel (``jax2tf``).

    python -m mrcnn_jax.export --workdir W --out DIR [--format stablehlo|savedmodel|both] [--batch N]
    mrcnn_jax.export.export_model("runs/x", "exported/", formats=("stablehlo",), batch=1)

DIR gets ``model.stablehlo`` (parameters baked in; runs with JAX alone), ``savedmodel/`` (a
``serving_default`` signature; runs with TensorFlow alone) and ``class_names.txt`` (class i on line i).
Both take a uint8 batch [N, H, W, 3] of RGB images of any one size (resized and padded onto the canvas
inside) and return ``mrcnn_jax.predict``'s detections at its default thresholds (``serving.py``):
boxes in the input's pixels and masks [N, D, H, W] bool at the input's size. The batch size is fixed
at export; each new (H, W) compiles once when first seen (XLA needs static shapes).
"""

from __future__ import annotations

import os

from mrcnn_jax.errors import UserError

FORMATS = ("stablehlo", "savedmodel")


def export_model(model, out: str, *, formats=FORMATS, batch: int = 1, platforms=None) -> dict[str, str]:
  """Writes ``model`` (a ``MaskRCNN``, a workdir or ``W/checkpoints/<step>``) in ``formats`` under ``out``.

  batch: the images per call; platforms: where the artifacts may run, e.g. ("cpu", "cuda") (default:
  this machine's JAX backend). Returns {format: path}.
  """
  from mrcnn_jax import checkpoints  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.export import savedmodel, stablehlo  # pylint: disable=import-outside-toplevel

  if not formats or not set(formats) <= set(FORMATS):
    raise UserError(f"formats must be some of {FORMATS}, got {tuple(formats)}")
  if batch < 1:
    raise UserError(f"batch must be at least 1, got {batch}")
  if isinstance(model, str):
    model = checkpoints.load(model)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "class_names.txt"), "w") as f:
    f.writelines(f"{name}\n" for name in model.config.class_names)
  writers = {"stablehlo": (stablehlo.save, "model.stablehlo"), "savedmodel": (savedmodel.save, "savedmodel")}
  paths = {}
  for name in formats:
    save, file_name = writers[name]
    paths[name] = os.path.join(out, file_name)
    save(model, paths[name], batch, platforms)
  return paths
