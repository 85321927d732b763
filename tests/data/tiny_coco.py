"""Writes a tiny COCO-format folder exercising every annotation kind (used by conftest and tests)."""

import json
import os

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

CATEGORIES = [{"id": 12, "name": "bird"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


def _rect(h, w, x1, y1, x2, y2):
  m = np.zeros((h, w), np.uint8)
  m[y1:y2, x1:x2] = 1
  return m


def _uncompressed_rle(mask):
  """COCO's uncompressed (crowd) RLE: column-major run lengths starting with zeros."""
  flat = mask.flatten(order="F")
  changes = np.flatnonzero(np.diff(flat)) + 1
  bounds = np.concatenate([[0], changes, [flat.size]])
  runs = np.diff(bounds).tolist()
  if flat[0]:
    runs = [0] + runs
  return {"size": list(mask.shape), "counts": runs}


def write_coco_folder(root, bad_images=True):
  """Writes images + annotations.json; returns (json path, image dir, expected per image id).

  expected[image_id] = list of (label, crowd, mask [H, W] uint8) in annotation order.
  """
  images_dir = os.path.join(root, "images")
  os.makedirs(images_dir, exist_ok=True)
  rng = np.random.default_rng(0)
  specs = [(101, "a.jpg", 40, 50), (102, "b.png", 60, 40), (103, "gray.jpg", 30, 30)]
  for _, name, h, w in specs:
    pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels if name != "gray.jpg" else pixels[..., 0]).save(os.path.join(images_dir, name))
  images = [{"id": i, "file_name": n, "height": h, "width": w} for i, n, h, w in specs]
  if bad_images:
    with open(os.path.join(images_dir, "corrupt.jpg"), "wb") as f:
      f.write(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    images += [{"id": 104, "file_name": "corrupt.jpg", "height": 10, "width": 10},
               {"id": 105, "file_name": "missing.jpg", "height": 10, "width": 10}]

  polygon = [5, 6, 25, 6, 25, 30, 5, 30]
  poly_mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], 40, 50)))
  crowd_mask = _rect(40, 50, 30, 2, 48, 20)
  bird_mask = _rect(60, 40, 10, 10, 30, 45)
  bird_rle = mask_utils.encode(np.asfortranarray(bird_mask))
  annotations = [
      {"id": 1, "image_id": 101, "category_id": 3, "iscrowd": 0, "bbox": [5, 6, 20, 24], "area": 480,
       "segmentation": [polygon]},
      {"id": 2, "image_id": 101, "category_id": 7, "iscrowd": 1, "bbox": [30, 2, 18, 18], "area": 324,
       "segmentation": _uncompressed_rle(crowd_mask)},
      {"id": 3, "image_id": 102, "category_id": 12, "iscrowd": 0, "bbox": [10, 10, 20, 35],
       "area": 700, "segmentation": {"size": [60, 40], "counts": bird_rle["counts"].decode()}},
      {"id": 4, "image_id": 102, "category_id": 3, "iscrowd": 0, "bbox": [3, 3, 0, 5],
       "segmentation": [[3, 3, 3, 8, 4, 8]]},       # zero-area box: dropped
      {"id": 5, "image_id": 102, "category_id": 3, "iscrowd": 0, "bbox": [3, 3, 5, 5],
       "segmentation": []},                          # empty segmentation: dropped
  ]
  if bad_images:
    annotations.append({"id": 6, "image_id": 104, "category_id": 7, "bbox": [1, 1, 3, 3],
                        "segmentation": [[1, 1, 4, 1, 4, 4]]})
  path = os.path.join(root, "annotations.json")
  with open(path, "w") as f:
    json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
  # Labels follow sorted category ids: cat (3) -> 0, dog (7) -> 1, bird (12) -> 2.
  expected = {101: [(0, False, poly_mask), (1, True, crowd_mask)], 102: [(2, False, bird_mask)],
              103: []}
  return path, images_dir, expected


COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
                 [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def write_person_keypoints_folder(root):
  """A COCO person_keypoints folder: one 40x50 image, two persons (one with 3 labelled keypoints, one
  with none) and a crowd region. Returns (json path, image dir, the first person's flat keypoints)."""
  from mrcnn_jax.data.coco_classes import COCO_KEYPOINT_NAMES  # pylint: disable=import-outside-toplevel
  images_dir = os.path.join(root, "images")
  os.makedirs(images_dir, exist_ok=True)
  Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(os.path.join(images_dir, "p.png"))
  flat = [0] * 51
  flat[0:3] = [10, 8, 2]            # nose, visible
  flat[15:18] = [6, 15, 1]          # left_shoulder, labelled but occluded
  flat[18:21] = [49, 15, 2]         # right_shoulder on the last pixel column
  person = {"image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[4, 4, 49, 4, 49, 39, 4, 39]]}
  annotations = [
      {**person, "id": 1, "bbox": [4, 4, 46, 36], "keypoints": flat, "num_keypoints": 3},
      {**person, "id": 2, "bbox": [4, 4, 10, 10], "keypoints": [0] * 51, "num_keypoints": 0},
      {**person, "id": 3, "bbox": [30, 2, 10, 10], "iscrowd": 1},
  ]
  category = {"id": 1, "name": "person", "supercategory": "person",
              "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": COCO_SKELETON}
  path = os.path.join(root, "person_keypoints.json")
  with open(path, "w") as f:
    json.dump({"images": [{"id": 1, "file_name": "p.png", "height": 40, "width": 50}],
               "annotations": annotations, "categories": [category]}, f)
  return path, images_dir, flat
