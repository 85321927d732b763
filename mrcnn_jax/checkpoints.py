"""``mrcnn_jax.load``: a trained model (its config and parameters) from a workdir or a checkpoint."""

from __future__ import annotations

import json
import os

import ml_collections
from flax import nnx

from mrcnn_jax import configs, outputs
from mrcnn_jax.configs import base
from mrcnn_jax.errors import UserError
from mrcnn_jax.model.mask_rcnn import MaskRCNN, build_model


# Config fields that a checkpoint's variables depend on: a resumed run must keep them.
SAME_MODEL = ("model.", "num_classes", "train.optimizer")


def _split_path(path: str) -> tuple[str, int | None]:
  """``W`` -> (W, None: latest);  ``W/checkpoints/<step>`` -> (W, step)."""
  path = os.path.normpath(path)
  parent, leaf = os.path.split(path)
  if leaf.isdigit() and os.path.basename(parent) == "checkpoints":
    return os.path.dirname(parent), int(leaf)
  return path, None


def _flatten(saved: dict, prefix: str = "") -> dict:
  """Nested JSON dict -> {"model.roi.fc_dim": 1024, ...}."""
  flat = {}
  for key, value in saved.items():
    flat.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
  return flat


def save_config(config: ml_collections.ConfigDict, workdir: str):
  """``<workdir>/config.json`` (local or gs://): what ``mrcnn_jax.load`` rebuilds the model from."""
  from etils import epath  # pylint: disable=import-outside-toplevel
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  outputs.write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """A workdir's ``config.json`` laid over today's base config (so fields added since have defaults)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"{path} not found: is {workdir!r} a training workdir?")
  with open(path) as f:
    saved = json.load(f)
  try:
    return configs.override(base.get_config(), _flatten(saved))
  except UserError as e:
    raise UserError(f"{path}: {e}") from e


def check_same_model(config: ml_collections.ConfigDict, workdir: str):
  """UserError, naming the fields that differ, when ``workdir`` holds checkpoints of another model
  than ``config``'s (they would not restore, and its config.json is what ``load`` rebuilds them with)."""
  checkpoints = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(checkpoints) or not any(name.isdigit() for name in os.listdir(checkpoints)):
    return
  saved, new = (_flatten(json.loads(c.to_json_best_effort())) for c in (load_config(workdir), config))
  differ = [key for key in sorted(set(saved) | set(new)) if key.startswith(SAME_MODEL)
            and saved.get(key) != new.get(key)]
  if differ:
    changes = ", ".join(f"{key}: {saved.get(key)!r} -> {new.get(key)!r}" for key in differ)
    raise UserError(f"{workdir} holds checkpoints of another model ({changes}): use another --workdir, "
                    "or the workdir's values")


def load(path: str) -> MaskRCNN:
  """The model saved in a training workdir (latest checkpoint) or in ``<workdir>/checkpoints/<step>``
  (its parameters, and its frozen BatchNorm statistics when they were imported)."""
  from mrcnn_jax.train.checkpoint import restore_variables  # pylint: disable=import-outside-toplevel
  workdir, step = _split_path(path)
  config = load_config(workdir)
  if config.pretrained.backbone_only:
    raise UserError(f"{workdir} holds an ImageNet backbone, not a model: train from it with "
                    f"--config.train.init_from={workdir}")
  # The model's structure without initialising it: random init of every parameter, to be overwritten,
  # would cost more than the restore (op by op, a compile per parameter shape: ~28 s for R50-FPN
  # on 2 CPU cores).
  graphdef, params, batch_stats = nnx.split(nnx.eval_shape(lambda: build_model(config)), nnx.Param,
                                            nnx.BatchStat)
  restored = restore_variables(workdir, {"params": params, "batch_stats": batch_stats}, step)
  # Checkpoints hold "batch_stats" exactly when the model has them (frozen BN); else it is empty.
  return nnx.merge(graphdef, restored["params"], restored.get("batch_stats", batch_stats))
