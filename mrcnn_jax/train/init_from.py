"""``config.train.init_from``: training starts from a converted workdir (``python -m mrcnn_jax.convert``):
a whole model (Detectron2's) or an ImageNet backbone (``config.pretrained.backbone_only``).

The weights only work on the input and in the ResNet they were trained with, so ``take_fields`` sets
``IMPORTED_FIELDS`` of ``config.model`` (ResNet depth, width, ResNeXt groups, norm, stride placement; the input's
channel order, mean and std) to the import's, overriding the training config, with one warning line
naming what changed. The rest of the model (heads, FPN width, number of classes) is the training
config's.

``load`` then fills every variable of the freshly built model, parameters and frozen-BN statistics,
whose path and shape match a tensor of the import; paths are compared where an FPN model holds the
ResNet (``backbone/bottom_up``), so an ImageNet backbone or an FPN model's trunk lands on a C4 or C5
model's ResNet too (C4's res5 sits in ``roi_heads``). It logs what was loaded, the variables whose
shape differs (e.g. the class-specific predictors for another number of classes: initialised fresh,
listed in one line) and the parts the import lacks. The loop calls it before step 0 only: a resumed
run continues from its own checkpoint.
"""

from __future__ import annotations

import re

import numpy as np
from absl import logging
from flax import nnx
from ml_collections import ConfigDict

from mrcnn_jax import configs
from mrcnn_jax.checkpoints import load_config
from mrcnn_jax.errors import UserError
from mrcnn_jax.train.checkpoint import read_variables

IMPORTED_FIELDS = ("backbone", "width", "num_groups", "width_per_group", "norm", "stride_in_1x1", "input_format",
                   "pixel_mean", "pixel_std")
# Path prefixes (of fpn_path) -> the model part they belong to, for the log lines; first match wins.
PARTS = (("backbone/bottom_up/", "ResNet"), ("backbone/", "FPN"), ("proposal_generator/", "RPN"),
         ("roi_heads/box_", "box head"), ("roi_heads/mask_head/", "mask head"))


def take_fields(config: ConfigDict, workdir: str) -> None:
  """Sets ``config.model``'s IMPORTED_FIELDS to those of the import in ``workdir`` (in place)."""
  imported = load_config(workdir).model
  changed = {name: imported[name] for name in IMPORTED_FIELDS if config.model[name] != imported[name]}
  if changed:
    logging.warning("init_from %s: its weights need %s", workdir, ", ".join(
        f"model.{name} {config.model[name]} -> {value}" for name, value in changed.items()))
    configs.override(config, {f"model.{name}": value for name, value in changed.items()})


def fpn_path(path: str, head: str) -> str:
  """A variable's path in a model with ``config.model.head`` ``head`` -> its path in an FPN model:
  ``backbone/res3/0/conv1/conv/kernel`` (C4, C5) -> ``backbone/bottom_up/res3/0/conv1/conv/kernel``,
  ``roi_heads/res5/...`` (C4) -> ``backbone/bottom_up/res5/...``."""
  if head == "fpn":
    return path
  return re.sub(r"^(?:backbone|roi_heads(?=/res5/))/", "backbone/bottom_up/", path)


def _parts(paths) -> str:
  """"FPN, RPN, box head": the PARTS that the FPN-model ``paths`` fall in, in order of appearance."""
  parts = (next((name for prefix, name in PARTS if path.startswith(prefix)), path.split("/")[0])
           for path in paths)
  return ", ".join(dict.fromkeys(parts))


def load(workdir: str, config: ConfigDict, variables: dict[str, nnx.State]) -> dict[str, nnx.State]:
  """``variables`` ({"params", "batch_stats"}: ``nnx.State``s of a model built from ``config``) with
  the import's tensors where path (``fpn_path``) and shape match, as numpy arrays; the rest as given.

  Raises UserError when nothing matches (another backbone than the import's?).
  """
  head = load_config(workdir).model.head
  imported = {kind: {fpn_path(path, head): array for path, array in arrays.items()}
              for kind, arrays in read_variables(workdir).items()}
  used, misshapen, fresh = set(), [], []
  loaded = {}
  for kind, state in variables.items():
    flat = []
    for path, variable in nnx.to_flat_state(state):
      name = fpn_path("/".join(map(str, path)), config.model.head)
      array = imported[kind].get(name)
      if array is None:
        fresh.append(name)
      elif array.shape != variable.shape:
        misshapen.append(f"{name} {array.shape} -> {variable.shape}")
      else:
        used.add((kind, name))
        variable = variable.replace(np.asarray(array, variable.dtype))
      flat.append((path, variable))
    loaded[kind] = nnx.from_flat_state(flat)

  unused = [name for kind, arrays in imported.items() for name in arrays if (kind, name) not in used]
  total = sum(map(len, imported.values()))
  if not used:
    raise UserError(f"init_from {workdir}: none of its {total} tensors fits this model in path and shape "
                    f"(its {_parts(unused)} vs this config's model.backbone={config.model.backbone}, ...)")
  logging.info("init_from %s: loaded %d of its %d tensors%s", workdir, len(used), total,
               f"; unused: {_parts(unused)} ({len(unused)} tensors)" if unused else "")
  if misshapen:
    logging.warning("init_from %s: initialised fresh, shapes differ: %s", workdir, ", ".join(misshapen))
  if fresh:
    logging.info("init_from %s: initialised fresh, not in it: %s (%d tensors)", workdir, _parts(fresh),
                 len(fresh))
  return loaded
