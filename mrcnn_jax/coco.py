"""COCO interchange and metrics (pycocotools): detections and ground truth as COCO dicts, box/mask AP.

Pure functions, no model: ``detections_to_coco`` (one image's detections -> COCO results),
``gt_to_coco`` (records -> a COCO ground-truth dict) and ``coco_metrics`` (COCOeval).
Metrics: {bbox,segm}/{AP,AP50,AP75,APs,APm,APl} in [0, 1]; -1 where the split has no GT of that size
(pycocotools' convention).
"""

import contextlib
import io

import numpy as np
from absl import logging
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn_jax.data import rle

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # the first six of COCOeval.stats


def _rle(mask: np.ndarray) -> dict:
  return {"size": [int(v) for v in mask.shape], "counts": rle.encode_mask(mask).decode("ascii")}


def detections_to_coco(image_id: int, boxes, scores, classes, valid, category_ids, masks=None) -> list:
  """One image's detections as COCO result dicts.

  Args:
    boxes [D, 4] (x1, y1, x2, y2) in original image pixels; scores [D]; classes [D] in 1..K;
    valid [D] bool; category_ids: dataset id of class k at index k - 1; masks: [D, H, W] bool at the
    original resolution, or None for box-only results.
  """
  out = []
  for d in np.flatnonzero(np.asarray(valid)):
    x1, y1, x2, y2 = (float(v) for v in boxes[d])
    result = {"image_id": int(image_id), "category_id": int(category_ids[int(classes[d]) - 1]),
              "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[d])}
    if masks is not None:
      result["segmentation"] = _rle(masks[d])
    out.append(result)
  return out


def gt_to_coco(records, class_names, category_ids) -> dict:
  """COCO ground-truth dict from records (sources.to_record: image_id, height, width, boxes in
  original pixels, classes 1..K, crowd, area, masks as compressed RLE counts or None)."""
  images, annotations = [], []
  for record in records:
    height, width = int(record["height"]), int(record["width"])
    images.append({"id": int(record["image_id"]), "height": height, "width": width})
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(record["boxes"], np.float64).reshape(-1, 4)):
      ann = {"id": len(annotations) + 1, "image_id": int(record["image_id"]),
             "category_id": int(category_ids[int(record["classes"][i]) - 1]),
             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(record["area"][i]),
             "iscrowd": int(bool(record["crowd"][i]))}
      if record["masks"] is not None:
        counts = record["masks"][i]
        ann["segmentation"] = {"size": [height, width],
                               "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
      annotations.append(ann)
  categories = [{"id": int(c), "name": n} for n, c in zip(class_names, category_ids)]
  return {"images": images, "annotations": annotations, "categories": categories}


def coco_metrics(gt: dict, results: list, iou_types=("bbox", "segm")) -> dict:
  """COCOeval of `results` against `gt` -> {"<iou_type>/<metric>": float} (0.0 with no results)."""
  if not results:
    return {f"{t}/{m}": 0.0 for t in iou_types for m in METRICS}
  coco_gt = COCO()
  coco_gt.dataset = gt
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt.createIndex()
  metrics = {}
  for iou_type in iou_types:
    # As Detectron2: without the box, loadRes takes the mask area for segm's small/medium/large.
    dts = results if iou_type == "bbox" else [{k: v for k, v in r.items() if k != "bbox"}
                                              for r in results]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
      coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dts), iou_type)
      coco_eval.evaluate()
      coco_eval.accumulate()
      coco_eval.summarize()
    logging.info("COCO %s:\n%s", iou_type, text.getvalue())
    metrics.update({f"{iou_type}/{m}": float(v) for m, v in zip(METRICS, coco_eval.stats)})
  return metrics
