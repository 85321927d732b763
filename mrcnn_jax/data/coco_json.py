"""Reading and checking COCO-format instance annotation JSON (no TensorFlow).

`load_coco_json` parses and validates the whole file up front and names the offending field on error
(a UserError), e.g. "annotations[3].bbox: expected 4 numbers". `instances_for_image` turns one image's
annotations into (bbox, contiguous label, crowd, area, compressed RLE) records, dropping (and counting
and naming in a `Report`) boxes with no area inside the image and segmentations that rasterize to no
pixels. Polygons, uncompressed RLE (counts as a
list) and compressed RLE (counts as a string) are all accepted. COCO person_keypoints files add
keypoint names and a skeleton to their categories and `keypoints` (flat [x1, y1, v1, ...], integer
pixel indices) to their annotations: instances then carry [K, 3] keypoints in continuous pixel
coordinates (indices + 0.5, ``keypoints.py``).
"""

import dataclasses
import json
import math

import numpy as np
import pycocotools.mask as mask_utils

from mrcnn_jax.errors import UserError


@dataclasses.dataclass
class Report:
  """What a folder conversion kept and dropped (printed by `prepare`)."""
  images: int = 0
  images_without_annotations: int = 0
  instances: int = 0
  crowd: int = 0
  dropped_zero_area_box: int = 0
  dropped_empty_segmentation: int = 0
  dropped: list = dataclasses.field(default_factory=list)  # why each dropped annotation was dropped
  skipped_bad_images: list = dataclasses.field(default_factory=list)


def _fail(where: str, message: str):
  raise UserError(f"{where}: {message}")


def _is_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def _check_list(data: dict, key: str, where: str = "") -> list:
  if key not in data:
    _fail(where + key, "missing")
  if not isinstance(data[key], list):
    _fail(where + key, f"expected a list, got {type(data[key]).__name__}")
  return data[key]


def _check_segmentation(seg, where: str, height: int, width: int):
  if isinstance(seg, list):
    for j, poly in enumerate(seg):
      if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
        _fail(f"{where}[{j}]", "expected a polygon (a list of numbers)")
      if len(poly) % 2:
        _fail(f"{where}[{j}]", f"expected an even number of coordinates, got {len(poly)}")
  elif isinstance(seg, dict):
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
      _fail(f"{where}.size", "expected [height, width]")
    if list(size) != [height, width]:
      _fail(f"{where}.size", f"{size} does not match the image's [height, width] = {[height, width]}")
    if isinstance(counts, list):
      if not all(_is_int(v) and v >= 0 for v in counts) or sum(counts) != height * width:
        _fail(f"{where}.counts", f"expected non-negative run lengths summing to {height * width}")
    elif not isinstance(counts, str):
      _fail(f"{where}.counts", "expected a list of run lengths or a compressed RLE string")
  else:
    _fail(where, "expected a list of polygons or an RLE dict")


def _check_keypoint_category(cat: dict, where: str) -> None:
  names = cat.get("keypoints")
  if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
    _fail(where + ".keypoints", "expected a non-empty list of keypoint names")
  for j, pair in enumerate(cat.get("skeleton", [])):
    if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) and 1 <= v <= len(names) for v in pair)):
      _fail(f"{where}.skeleton[{j}]", f"expected a pair of keypoint numbers in 1..{len(names)}")


def _check_keypoints(ann: dict, where: str, num_keypoints: int) -> None:
  values = ann["keypoints"]
  if not num_keypoints:
    _fail(where, "has keypoints but its category declares no keypoint names")
  if not isinstance(values, list) or len(values) != 3 * num_keypoints or not all(_is_number(v) for v in values):
    _fail(where, f"expected {3 * num_keypoints} numbers [x1, y1, v1, ...] for the category's "
                 f"{num_keypoints} keypoints")
  if any(v not in (0, 1, 2) for v in values[2::3]):
    _fail(where, "expected visibility flags v in {0, 1, 2}")


def validate(data) -> None:
  """Raises UserError naming the first malformed field of a COCO instances dict."""
  if not isinstance(data, dict):
    _fail("<root>", "expected a JSON object with images, annotations and categories")
  images = {}
  for i, image in enumerate(_check_list(data, "images")):
    where = f"images[{i}]"
    if not isinstance(image, dict):
      _fail(where, "expected an object")
    if not _is_int(image.get("id")):
      _fail(where + ".id", "expected an integer")
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
      _fail(where + ".file_name", "expected a non-empty string")
    for key in ("height", "width"):
      if not _is_int(image.get(key)) or image[key] <= 0:
        _fail(f"{where}.{key}", "expected a positive integer")
    if image["id"] in images:
      _fail(where + ".id", f"duplicate image id {image['id']}")
    images[image["id"]] = image
  category_ids, names = set(), set()
  categories = _check_list(data, "categories")
  if not categories:
    _fail("categories", "expected at least one category")
  for i, cat in enumerate(categories):
    where = f"categories[{i}]"
    if not isinstance(cat, dict) or not _is_int(cat.get("id")):
      _fail(where + ".id", "expected an integer")
    if not isinstance(cat.get("name"), str) or not cat["name"]:
      _fail(where + ".name", "expected a non-empty string")
    if cat["id"] in category_ids or cat["name"] in names:
      _fail(where, f"duplicate category id {cat['id']} or name {cat['name']!r}")
    category_ids.add(cat["id"])
    names.add(cat["name"])
    if "keypoints" in cat:
      _check_keypoint_category(cat, where)
  keypoint_names = {tuple(c["keypoints"]) for c in categories if "keypoints" in c}
  if len(keypoint_names) > 1:
    _fail("categories", "categories declare different keypoint names; one keypoint set per dataset")
  num_keypoints = {c["id"]: len(c.get("keypoints", [])) for c in categories}
  for i, ann in enumerate(_check_list(data, "annotations")):
    where = f"annotations[{i}]"
    if not isinstance(ann, dict):
      _fail(where, "expected an object")
    if ann.get("image_id") not in images:
      _fail(where + ".image_id", f"unknown image id {ann.get('image_id')!r}")
    if ann.get("category_id") not in category_ids:
      _fail(where + ".category_id", f"unknown category id {ann.get('category_id')!r}")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
      _fail(where + ".bbox", f"expected 4 numbers [x, y, width, height], got {bbox!r}")
    if ann.get("iscrowd", 0) not in (0, 1):
      _fail(where + ".iscrowd", f"expected 0 or 1, got {ann['iscrowd']!r}")
    if "area" in ann and not _is_number(ann["area"]):
      _fail(where + ".area", "expected a number")
    if "segmentation" not in ann:
      _fail(where + ".segmentation", "missing")
    if "keypoints" in ann:
      _check_keypoints(ann, where + ".keypoints", num_keypoints[ann["category_id"]])
    image = images[ann["image_id"]]
    _check_segmentation(ann["segmentation"], where + ".segmentation", image["height"], image["width"])


def load_coco_json(path: str) -> dict:
  """Parses and validates an annotation file; errors name the file and the field."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f"{path}: cannot read annotation JSON ({e})") from e
  try:
    validate(data)
  except UserError as e:
    raise UserError(f"{path}: {e}") from e
  return data


def categories(data: dict):
  """(names, ids) of the categories sorted by id: label i <-> ids[i] (class i + 1 in the model)."""
  cats = sorted(data["categories"], key=lambda c: c["id"])
  return [c["name"] for c in cats], [c["id"] for c in cats]


def keypoint_info(data: dict):
  """(names, 0-based skeleton pairs) of the dataset's keypoints; ((), ()) without keypoints."""
  cat = next((c for c in sorted(data["categories"], key=lambda c: c["id"]) if "keypoints" in c), None)
  if cat is None:
    return (), ()
  return tuple(cat["keypoints"]), tuple((a - 1, b - 1) for a, b in cat.get("skeleton", []))


def _keypoints(ann: dict, num_keypoints: int) -> np.ndarray:
  """[K, 3] float32 in continuous pixel coordinates (indices + 0.5); zeros where unlabelled."""
  out = np.asarray(ann.get("keypoints", [0] * 3 * num_keypoints), np.float32).reshape(num_keypoints, 3)
  out[:, :2] += 0.5
  out[out[:, 2] == 0] = 0.0
  return out


def annotations_by_image(data: dict) -> dict:
  """image id -> its annotations, in file order; every image present (possibly with none)."""
  grouped = {image["id"]: [] for image in data["images"]}
  for ann in data["annotations"]:
    grouped[ann["image_id"]].append(ann)
  return grouped


def to_rle(segmentation, height: int, width: int) -> dict:
  """Compressed RLE of a polygon list / uncompressed RLE / compressed RLE segmentation."""
  if isinstance(segmentation, list):
    polygons = [p for p in segmentation if len(p) >= 6]  # fewer than 3 points has no area
    if not polygons:
      return mask_utils.encode(np.zeros((height, width), np.uint8, order="F"))
    return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
  if isinstance(segmentation["counts"], list):
    return mask_utils.frPyObjects(segmentation, height, width)
  return {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}


def _why_empty(segmentation) -> str:
  if isinstance(segmentation, list) and any(0 < len(p) < 6 for p in segmentation):
    return "segmentation has no pixels (a polygon with fewer than 3 points)"
  return "segmentation has no pixels"


def instances_for_image(anns, image: dict, category_ids, report: Report, num_keypoints: int = 0) -> list:
  """Kept instances of one image as dicts: box (x1, y1, x2, y2), label, crowd, area, rle counts
  (and keypoints [K, 3] when num_keypoints K > 0)."""
  height, width = image["height"], image["width"]
  label_of = {cid: i for i, cid in enumerate(category_ids)}
  out = []
  for ann in anns:
    x, y, w, h = ann["bbox"]
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    where = f"annotation id {ann.get('id')} (image id {image['id']}, {image['file_name']})"
    if x2 <= x1 or y2 <= y1:
      report.dropped_zero_area_box += 1
      report.dropped.append(f"{where}: bbox {ann['bbox']} has no area inside the {width}x{height} image")
      continue
    rle = to_rle(ann["segmentation"], height, width)
    pixels = float(mask_utils.area(rle))
    if pixels == 0:
      report.dropped_empty_segmentation += 1
      report.dropped.append(f"{where}: {_why_empty(ann['segmentation'])}")
      continue
    crowd = bool(ann.get("iscrowd", 0))
    out.append({"box": (x1, y1, x2, y2), "label": label_of[ann["category_id"]], "crowd": crowd,
                "area": float(ann.get("area", pixels)), "mask": rle["counts"]})
    if num_keypoints:
      out[-1]["keypoints"] = _keypoints(ann, num_keypoints)
    report.crowd += crowd
  report.instances += len(out)
  report.images_without_annotations += not out
  return out
