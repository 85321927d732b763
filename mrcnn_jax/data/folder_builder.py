"""TFDS builder `coco_folder/<name>`: any COCO-format instance dataset (annotation JSON + image folder).

One split per (annotation file, image folder) pair. Category ids need not be 1..K: labels are the
categories sorted by id, and the original ids are kept in the metadata (`category_ids`) so evaluation
reports them. Images without annotations are kept. Every image is fully decoded once to catch corrupt
or missing files, and its size is checked against the JSON: such an image is an error naming the file,
or, with `skip_bad_images`, skipped and listed in the split's `Report`. Boxes with no area and empty
segmentations are dropped, counted and named there. All splits must have the same categories.
COCO person_keypoints files (categories with keypoint names and a skeleton) give instances keypoints
and the metadata of ``keypoints.py`` (the flip map from the left_/right_ names; COCO's OKS sigmas for
COCO's 17 person keypoints, ``keypoints.DEFAULT_SIGMA`` for other names).

This is also the path to COCO 2017 *with masks* (and, from person_keypoints_*.json, keypoints) (TFDS's coco/2017 stores boxes only):
  python -m mrcnn_jax.data.prepare folder --name coco2017 --data_dir D \
      --annotations train=annotations/instances_train2017.json \
                    validation=annotations/instances_val2017.json \
      --images train=train2017 validation=val2017
"""

import dataclasses
import hashlib
import io
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from mrcnn_jax import images
from mrcnn_jax.data import coco_json, features, keypoints
from mrcnn_jax.errors import UserError


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  annotations: dict = dataclasses.field(default_factory=dict)  # split -> annotation JSON path
  images: dict = dataclasses.field(default_factory=dict)       # split -> image folder
  skip_bad_images: bool = False


def _read_image(path: str, width: int, height: int):
  """Encoded RGB image bytes of `path`, upright (its EXIF orientation applied, as by every command's
  reader), or an error message naming the file."""
  if not os.path.isfile(path):
    return None, f"{path}: image file not found"
  with open(path, "rb") as f:
    data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      stored_as_is = image.format in ("JPEG", "PNG") and image.mode in ("RGB", "L")
      orientation = images.orientation(image)
      pixels = images.upright_rgb(image)
  except Exception as e:  # PIL raises many types for corrupt files
    return None, f"{path}: cannot decode image ({type(e).__name__}: {e})"
  if pixels.shape[:2] != (height, width):
    turned = (f" upright, after its EXIF orientation {orientation} ({pixels.shape[0]}x{pixels.shape[1]} as "
              "stored: were the annotations made on the stored pixels?)" if orientation >= 5 else "")
    return None, f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}{turned}, annotations say {width}x{height}"
  if stored_as_is and orientation == 1:
    return data, None
  return features.encode_png(pixels), None


class CocoFolder(features.LocalBuilder, tfds.core.GeneratorBasedBuilder):
  """COCO-format folder dataset; pass a FolderConfig (its name is the dataset's name)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []
  # Where TFDS looks for checksums; without it TFDS 4.9.10 needs the `importlib_resources` package.
  code_path = epath.Path(__file__)

  def __init__(self, **kwargs):
    self.reports = {}  # split -> coco_json.Report, filled while generating (printed by `prepare`)
    self._parsed = {}  # split -> validated annotation dict (TFDS's __init__ already needs _info)
    super().__init__(**kwargs)

  def _data(self, split: str) -> dict:
    if split not in self._parsed:
      self._parsed[split] = coco_json.load_coco_json(self.builder_config.annotations[split])
    return self._parsed[split]

  def _categories(self):
    """((names, ids), (keypoint names, skeleton)) shared by all splits."""
    cats = {split: (coco_json.categories(self._data(split)), coco_json.keypoint_info(self._data(split)))
            for split in self.builder_config.annotations}
    first_split, first = next(iter(cats.items()))
    for split, other in cats.items():
      if other != first:
        raise UserError(f"{self.builder_config.annotations[split]}: categories differ from those of "
                         f"split {first_split!r} ({self.builder_config.annotations[first_split]})")
    return first

  def _info(self) -> tfds.core.DatasetInfo:
    (names, ids), (keypoint_names, skeleton) = self._categories()
    metadata = keypoints.dataset_metadata(keypoint_names, skeleton) if keypoint_names else {}
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features.instance_features(names, len(keypoint_names)),
        metadata=tfds.core.MetadataDict(category_ids=ids, annotations_sha256=self.annotations_sha256(), **metadata),
    )

  def annotations_sha256(self) -> dict[str, str]:
    """{split: the sha256 of its annotation JSON}: what the dataset was prepared from."""
    return {split: hashlib.sha256(epath.Path(path).read_bytes()).hexdigest()
            for split, path in self.builder_config.annotations.items()}

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    if set(cfg.annotations) != set(cfg.images):
      raise UserError(f"annotation splits {sorted(cfg.annotations)} != image splits {sorted(cfg.images)}")
    return {split: self._generate_examples(split) for split in cfg.annotations}

  def _generate_examples(self, split: str):
    data = self._data(split)
    _, category_ids = coco_json.categories(data)
    num_keypoints = len(coco_json.keypoint_info(data)[0])
    report = self.reports[split] = coco_json.Report()
    grouped = coco_json.annotations_by_image(data)
    for image in data["images"]:
      path = os.path.join(self.builder_config.images[split], image["file_name"])
      encoded, error = _read_image(path, image["width"], image["height"])
      if error is not None:
        if not self.builder_config.skip_bad_images:
          raise UserError(error + " (pass --skip_bad_images to skip such images)")
        report.skipped_bad_images.append(error)
        continue
      report.images += 1
      kept = coco_json.instances_for_image(grouped[image["id"]], image, category_ids, report, num_keypoints)
      objects = {
          "bbox": [features.normalized_bbox(k["box"], image["height"], image["width"]) for k in kept],
          "label": [k["label"] for k in kept],
          "is_crowd": [k["crowd"] for k in kept],
          "area": [k["area"] for k in kept],
          "mask": [k["mask"] for k in kept],
      }
      if num_keypoints:
        objects["keypoints"] = np.asarray([k["keypoints"] for k in kept], np.float32).reshape(-1, num_keypoints, 3)
      yield image["id"], {"image": encoded, "image/id": image["id"], "objects": objects}
