"""The on-disk example format shared by our TFDS builders (shapes and COCO-format folders).

  image          encoded PNG/JPEG bytes, decoded to [H, W, 3] uint8
  image/id       int64 (the COCO image id for folder datasets)
  objects        a sequence of instances:
    bbox         tfds BBox, normalized (ymin, xmin, ymax, xmax)
    label        ClassLabel 0..K-1 (contiguous; the pipeline adds 1 so 0 stays background)
    is_crowd     bool
    area         float32, the annotation's area in original pixels (COCO's, or the mask's pixel count)
    mask         compressed COCO RLE counts of the instance mask at image resolution (pycocotools)
    keypoints    (only in datasets with keypoints) [K, 3] float32: x, y in original pixels, v
                 (``keypoints.py``); all zeros for an instance without keypoints
Metadata: `category_ids` lists, for each label, the dataset's original category id (evaluation maps
classes back to these); datasets with keypoints add ``keypoints.dataset_metadata``'s entries.
"""

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from mrcnn_jax.data.rle import decode_mask, encode_mask  # noqa: F401  (the format's mask codec)


def instance_features(class_names, num_keypoints: int = 0) -> tfds.features.FeaturesDict:
  """FeaturesDict of the format above for the given ClassLabel names (with K = num_keypoints > 0
  keypoints per instance)."""
  objects = {
      "bbox": tfds.features.BBoxFeature(),
      "label": tfds.features.ClassLabel(names=list(class_names)),
      "is_crowd": np.bool_,
      "area": np.float32,
      "mask": tfds.features.Text(),
  }
  if num_keypoints:
    objects["keypoints"] = tfds.features.Tensor(shape=(num_keypoints, 3), dtype=np.float32)
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(None, None, 3)),
      "image/id": np.int64,
      "objects": tfds.features.Sequence(objects),
  })


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a [H, W, 3] uint8 image (PIL, no TensorFlow)."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def normalized_bbox(box_xyxy, height: int, width: int) -> tfds.features.BBox:
  """tfds BBox from an absolute (x1, y1, x2, y2) box, clipped to the image."""
  x1, y1, x2, y2 = (float(v) for v in box_xyxy)
  return tfds.features.BBox(ymin=min(max(y1 / height, 0.0), 1.0), xmin=min(max(x1 / width, 0.0), 1.0),
                            ymax=min(max(y2 / height, 0.0), 1.0), xmax=min(max(x2 / width, 0.0), 1.0))


class LocalBuilder:
  """Mixin for our TFDS builders, which download nothing: TFDS's "Downloading and preparing dataset
  Unknown size ..." and "... downloaded and prepared" lines become one "preparing" line."""

  def _log_download_bytes(self):  # TFDS prints this before generating (tfds 4.9)
    print(f"preparing {self.name} in {self.data_dir} ...")

  def _log_download_done(self):
    pass
