"""What the framework converters (``detectron2.py``, ``torchvision.py``) share: name rules' common tail,
the ResNet's depth and width, PyTorch layouts -> ours, the fit of a renamed state dict to our variables,
and writing the workdir.

Each converter gives ``rename`` (source name -> our path, "/"-separated, or None for a tensor it drops)
and ``to_ours`` (source name, array -> our layout); ``convert_weights`` checks that every kept tensor
lands on one of our variables with its shape and that every variable is filled.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mrcnn_jax import configs, outputs
from mrcnn_jax.data.coco_classes import (COCO_KEYPOINT_FLIP_MAP, COCO_KEYPOINT_NAMES, COCO_KEYPOINT_SIGMAS,
                                         COCO_KEYPOINT_SKELETON)
from mrcnn_jax.errors import UserError
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.model.resnet import RESNETS, STAGE_NAMES, ResNetSpec

# A converter's own rules come first; then FrozenBN tensors become our FrozenBatchNorm's and every
# other weight a kernel.
NORM_AND_KERNEL_RULES = (
    (r"\.norm\.weight$", ".norm.scale"),
    (r"\.norm\.running_mean$", ".norm.mean"),
    (r"\.norm\.running_var$", ".norm.var"),
    (r"\.weight$", ".kernel"),
)


# Where a ResNet's stem and stages sit in our tree: an FPN model's ``backbone/bottom_up``, a C4 model's
# ``backbone`` with res5 in ``roi_heads``.
STEMS = ("backbone/bottom_up/stem/conv/kernel", "backbone/stem/conv/kernel")
BLOCK = re.compile(r"(?:backbone/(?:bottom_up/)?|roi_heads/)(res[2-5])/(\d+)/(\w+)/")


def apply_rules(name: str, rules) -> str:
  """``name`` after each regex (pattern, replacement) of ``rules`` in turn, "." -> "/": our path."""
  for pattern, replacement in rules:
    name = re.sub(pattern, replacement, name)
  return name.replace(".", "/")


def resnet_fields(by_path: dict[str, np.ndarray]) -> dict:
  """``model.backbone`` (the RESNETS entry with the block kind and res2..res5 block counts), ``model.width``
  (the stem's output channels) and ``model.{num_groups,width_per_group}`` (ResNeXt: read from res2's
  first 3x3 conv, [bottleneck, bottleneck / groups, 3, 3]) of the ResNet in a state dict keyed by our
  paths (an FPN's or a C4's, ``BLOCK``), in PyTorch layouts."""
  blocks = {match.groups() for match in map(BLOCK.match, by_path) if match}
  depths = tuple(len({block for stage, block, _ in blocks if stage == name}) for name in STAGE_NAMES)
  spec = ResNetSpec("bottleneck" if any(layer == "conv3" for *_, layer in blocks) else "basic", depths)
  names = [name for name, known in RESNETS.items() if known == spec]
  if not names:
    raise UserError(f"a ResNet of {spec.block} blocks, {depths} in res2..res5: none of {', '.join(RESNETS)}")
  stem = next((by_path[path] for path in STEMS if path in by_path), None)
  if stem is None:
    raise UserError(f"the checkpoint has no ResNet stem conv (our {STEMS[0]})")
  width = stem.shape[0]
  bottleneck, per_group = next(array.shape[:2] for path, array in by_path.items()
                               if BLOCK.match(path) and path.endswith("res2/0/conv2/conv/kernel"))
  return {"model.backbone": names[0], "model.width": width, "model.num_groups": bottleneck // per_group,
          "model.width_per_group": 0 if bottleneck == width else per_group}


def keypoint_fields(num_keypoints: int, num_convs: int, conv_dim: int, num_classes: int) -> dict:
  """Config fields of an imported keypoint head; 17 keypoints on one class are COCO's persons (the class
  name, keypoint names, flip map, OKS sigmas and skeleton)."""
  fields = {"model.keypoint.num_keypoints": num_keypoints, "model.keypoint.num_convs": num_convs,
            "model.keypoint.conv_dim": conv_dim}
  if num_keypoints == len(COCO_KEYPOINT_NAMES) and num_classes == 1:
    fields.update({"class_names": ("person",), "data.keypoint_names": COCO_KEYPOINT_NAMES,
                   "data.keypoint_flip_map": COCO_KEYPOINT_FLIP_MAP, "data.keypoint_sigmas": COCO_KEYPOINT_SIGMAS,
                   "data.keypoint_skeleton": COCO_KEYPOINT_SKELETON})
  return fields


def pytorch_layout(array: np.ndarray, transposed: bool = False) -> np.ndarray:
  """A PyTorch weight in our layout: conv [out,in,kh,kw] -> [kh,kw,in,out]; ConvTranspose2d
  (``transposed``) [in,out,kh,kw] -> [kh,kw,in,out]; linear [out,in] -> [in,out]; others as they are."""
  if array.ndim == 4:
    return array.transpose(2, 3, 0, 1) if transposed else array.transpose(2, 3, 1, 0)
  if array.ndim == 2:
    return array.T
  return array


def fc_after_nchw_flatten(weight: np.ndarray, channels: int) -> np.ndarray:
  """A linear weight [out, C*S*S] reading the (C,S,S) flatten of NCHW RoI features -> our kernel
  [S*S*C, out] reading the (S,S,C) flatten of NHWC ones."""
  side = int(round((weight.shape[1] // channels) ** 0.5))
  return weight.reshape(-1, channels, side, side).transpose(2, 3, 1, 0).reshape(-1, weight.shape[0])


def convert_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple], *,
                    rename: Callable[[str], str | None], to_ours: Callable[[str, np.ndarray], np.ndarray],
                    what: str) -> dict[str, np.ndarray]:
  """Source state dict -> {our path: float32 array} for our variables' ``shapes`` {path: shape}.

  Every tensor that ``rename`` keeps must land on one of ours and every one of ours must be filled
  with its shape, else a UserError ("the checkpoint does not fit {what}: ...") lists what is
  unexpected, missing or misshapen.
  """
  out, unexpected, misshapen = {}, [], []
  for name, array in weights.items():
    path = rename(name)
    if path is None:
      continue
    if path not in shapes:
      unexpected.append(name)
      continue
    array = to_ours(name, np.asarray(array, np.float32))
    if array.shape != tuple(shapes[path]):
      misshapen.append(f"{name} -> {path}: {array.shape} vs {tuple(shapes[path])}")
    out[path] = array
  missing = sorted(set(shapes) - set(out))
  problems = [f"{len(v)} {kind}: {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}"
              for kind, v in (("unexpected", unexpected), ("missing", missing), ("misshapen", misshapen)) if v]
  if problems:
    raise UserError(f"the checkpoint does not fit {what}: " + "; ".join(problems))
  return out


def converted_state(config: ml_collections.ConfigDict, convert: Callable[[dict], dict], prefix: str = ""):
  """(params, batch_stats) ``nnx.State``s of ``build_model(config)``'s variables under ``prefix``, filled
  by ``convert({path: shape}) -> {path: array}`` (the other variables are left out)."""
  model = nnx.eval_shape(lambda: build_model(config))
  flat = [(path, v) for path, v in nnx.to_flat_state(nnx.state(model)) if _key(path).startswith(prefix)]
  arrays = convert({_key(path): v.shape for path, v in flat})
  state = nnx.from_flat_state([(path, type(v)(jnp.asarray(arrays[_key(path)]))) for path, v in flat])
  return nnx.filter_state(state, nnx.Param, nnx.BatchStat)


def _key(path) -> str:
  return "/".join(map(str, path))


def sha256_prefix(path: str, length: int = 16) -> str:
  """The first ``length`` hex digits of the file's sha256 (recorded in config.pretrained)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()[:length]


def convert_file(src: str, out: str, source: str, convert: Callable) -> ml_collections.ConfigDict:
  """Reads checkpoint ``src``, turns it into (config, params, batch_stats) with ``convert(weights)``,
  records ``source`` in config.pretrained and writes workdir ``out`` (config.json + checkpoint 0), whole
  or not at all (built in a temporary sibling, then renamed: an interrupted convert leaves no ``out``)."""
  from mrcnn_jax.checkpoints import save_config  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.convert.checkpoint_io import read_checkpoint  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.train.checkpoint import save_imported  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(src):
    raise UserError(f"checkpoint {src} not found")
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise UserError(f"{out} exists and is not an empty folder: give a new --out")
  config, params, batch_stats = convert(read_checkpoint(src))
  configs.override(config, {"pretrained.source": source, "pretrained.file": os.path.abspath(src),
                            "pretrained.sha256": sha256_prefix(src)})
  with outputs.atomic_path(out) as tmp:
    save_config(config, tmp)
    save_imported(tmp, params, batch_stats)
  return config
