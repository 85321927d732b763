"""Reading raw TFDS examples: coco/2017's features (no masks) map onto our records too."""

import io

import numpy as np
from PIL import Image

from mrcnn_jax.data import sources


def test_coco_category_ids():
  ids = sources.COCO_CATEGORY_IDS
  assert len(ids) == 80 == len(set(ids)) and ids == sorted(ids) and ids[0] == 1 and ids[-1] == 90


def _coco2017_example(image):
  """What tfds coco/2017 yields (objects/bbox normalized yxyx, label 0..79, no masks)."""
  return {"image": image, "image/filename": b"x.jpg", "image/id": 42,
          "objects": {"id": [1, 2], "area": [120, 30], "is_crowd": [False, True], "label": [0, 79],
                      "bbox": [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]}}


def test_coco2017_example_to_record():
  image = np.zeros((50, 100), np.uint8)                    # grayscale -> 3 channels
  record = sources.to_record(_coco2017_example(image), with_masks=False)
  assert record["image"].shape == (50, 100, 3) and record["masks"] is None
  assert record["image_id"] == 42 and record["classes"].tolist() == [1, 80]
  assert record["crowd"].tolist() == [False, True] and record["area"].tolist() == [120, 30]
  np.testing.assert_allclose(record["boxes"], [[20, 5, 60, 25], [0, 0, 100, 50]], rtol=1e-6)


def test_encoded_image_record_reads_only_the_size():
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(buffer, format="PNG")
  record = sources.to_record(_coco2017_example(buffer.getvalue()), with_masks=False)
  assert record["image"] is None and (record["height"], record["width"]) == (30, 40)
  np.testing.assert_allclose(record["boxes"][1], [0, 0, 40, 30])
