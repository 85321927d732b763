"""Opening prepared datasets TF-free (tfds.builder_from_directory + ArrayRecord data sources).

config.data.name selects the directory under config.data.data_dir:
  "mrcnn_shapes"            -> mrcnn_shapes/default/<version>
  "mrcnn_shapes/<config>"   -> mrcnn_shapes/<config>/<version>   (non-default `prepare shapes` flags)
  "mrcnn_figures"[/<config>] the same for `prepare keypoints`
  "coco/2017"               -> coco/2017/<version>               (TFDS's builder: boxes, no masks)
  "<name>" or "coco_folder/<name>" -> coco_folder/<name>/<version> (`prepare folder --name <name>`)
The newest version directory is used. `to_record` maps any of them to preprocess.py's record.
"""

import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from mrcnn_jax.errors import UserError

# TFDS coco/2017 labels 0..79 are COCO's 80 used category ids in increasing order.
COCO_CATEGORY_IDS = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45))
                     + list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91)))


def dataset_dir(name: str, data_dir: str) -> str:
  """The prepared version directory of dataset `name` (UserError saying how to prepare it)."""
  data_dir = os.path.expanduser(data_dir)
  if name in ("mrcnn_shapes", "mrcnn_figures"):
    rel = f"{name}/default"
  elif "/" in name:
    rel = name
  else:
    rel = f"coco_folder/{name}"
  root = os.path.join(data_dir, rel)
  versions = []
  if os.path.isdir(root):
    versions = [v for v in os.listdir(root) if os.path.exists(os.path.join(root, v, "dataset_info.json"))]
  if not versions:
    raise UserError(f"config.data.name={name!r}: no prepared dataset in {root}; prepare it with "
                     "`python -m mrcnn_jax.data.prepare {shapes|keypoints|folder|coco} --data_dir "
                     f"{data_dir} ...` (see mrcnn_jax/data/prepare.py)")
  newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))
  return os.path.join(root, newest)


def open_builder(data_config):
  """Read-only TFDS builder of config.data (no TensorFlow needed)."""
  return tfds.builder_from_directory(dataset_dir(data_config.name, data_config.data_dir))


def has_masks(builder) -> bool:
  return "mask" in builder.info.features["objects"]


def class_info(builder):
  """(class names, original category ids) for classes 1..K."""
  names = list(builder.info.features["objects"]["label"].names)
  metadata = builder.info.metadata or {}
  ids = list(metadata["category_ids"]) if "category_ids" in metadata else None
  if ids is None:
    ids = COCO_CATEGORY_IDS if len(names) == len(COCO_CATEGORY_IDS) else list(range(1, len(names) + 1))
  return names, [int(i) for i in ids]


def num_keypoints(builder) -> int:
  """K of a dataset whose instances carry [K, 3] keypoints (features.py); 0 without keypoints."""
  objects = builder.info.features["objects"]
  return int(objects["keypoints"].shape[0]) if "keypoints" in objects else 0


def keypoint_info(builder) -> dict:
  """The dataset's keypoint metadata (``keypoints.dataset_metadata``'s entries); {} without keypoints."""
  metadata = builder.info.metadata or {}
  return {k: metadata[k] for k in ("keypoint_names", "keypoint_skeleton", "keypoint_flip_map",
                                   "keypoint_sigmas") if k in metadata}


def data_source(builder, split: str, decode_images: bool = True):
  """Random-access source of raw examples of `split` (image bytes left encoded if not decode_images)."""
  if split not in builder.info.splits:
    raise UserError(f"split {split!r} not in dataset {builder.info.full_name} "
                     f"(has {sorted(builder.info.splits)})")
  decoders = None if decode_images else {"image": tfds.decode.SkipDecoding()}
  return builder.as_data_source(split, decoders=decoders)


def _image_array(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] != 3:
    image = np.broadcast_to(image[..., :1], image.shape[:2] + (3,))
  return np.ascontiguousarray(image, dtype=np.uint8)


def to_record(raw: dict, with_masks: bool) -> dict:
  """A raw TFDS example (our builders' or coco/2017's) -> preprocess.py record, plus height/width.

  With images left encoded (data_source(..., decode_images=False)) the record's image is None and
  only the header is read for the size. ``keypoints`` is [N, K, 3] (features.py), or None for a
  dataset without keypoints.
  """
  if isinstance(raw["image"], bytes):
    with Image.open(io.BytesIO(raw["image"])) as header:
      width, height = header.size
    image = None
  else:
    image = _image_array(raw["image"])
    height, width = image.shape[:2]
  objects = raw["objects"]
  yxyx = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
  boxes = yxyx[:, [1, 0, 3, 2]] * np.asarray([width, height, width, height], np.float32)
  return {
      "image": image,
      "height": height,
      "width": width,
      "image_id": int(raw["image/id"]),
      "boxes": boxes,
      "classes": np.asarray(objects["label"], np.int32).reshape(-1) + 1,
      "crowd": np.asarray(objects["is_crowd"], bool).reshape(-1),
      "area": np.asarray(objects["area"], np.float32).reshape(-1),
      "masks": list(objects["mask"]) if with_masks else None,
      "keypoints": np.asarray(objects["keypoints"], np.float32) if "keypoints" in objects else None,
  }
