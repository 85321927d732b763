"""COCO interchange and metrics (pycocotools): detections and ground truth as COCO dicts, box/mask AP.

Pure functions, no model: ``detections_to_coco`` (one image's detections -> COCO results),
``gt_to_coco`` (records -> a COCO ground-truth dict) and ``coco_metrics`` (COCOeval).
Metrics: {bbox,segm}/{AP,AP50,AP75,APs,APm,APl} and keypoints/{AP,AP50,AP75,APm,APl} (OKS with the
dataset's sigmas; pycocotools has no small range for keypoints) in [0, 1]; -1 where the split has no
GT of that size (pycocotools' convention). Keypoints are continuous pixel coordinates here and COCO's
integer pixel indices in the COCO dicts (x - 0.5, as Detectron2 writes them).
"""

import contextlib
import io

import numpy as np
from absl import logging
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn_jax.data import rle

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # the first six of COCOeval.stats
KEYPOINT_METRICS = ("AP", "AP50", "AP75", "APm", "APl")  # the first five of its stats for keypoints


def _metric_names(iou_type: str) -> tuple[str, ...]:
  return KEYPOINT_METRICS if iou_type == "keypoints" else METRICS


def _coco_keypoints(keypoints, keep=None) -> list:
  """[K, 3] continuous (x, y, v or score) -> COCO's flat [x1, y1, v1, ...] in pixel indices; zeros
  where ``keep`` [K] is False."""
  out = np.array(keypoints, np.float64)
  out[:, :2] -= 0.5
  if keep is not None:
    out[~np.asarray(keep)] = 0.0
  return out.ravel().tolist()


def _rle(mask: np.ndarray) -> dict:
  return {"size": [int(v) for v in mask.shape], "counts": rle.encode_mask(mask).decode("ascii")}


def detections_to_coco(image_id: int, boxes, scores, classes, valid, category_ids, masks=None,
                       keypoints=None) -> list:
  """One image's detections as COCO result dicts.

  Args:
    boxes [D, 4] (x1, y1, x2, y2) in original image pixels; scores [D]; classes [D] in 1..K;
    valid [D] bool; category_ids: dataset id of class k at index k - 1; masks: [D, H, W] bool at the
    original resolution, or None for box-only results; keypoints: [D, K, 3] (x, y in original pixels,
    score), or None.
  """
  out = []
  for d in np.flatnonzero(np.asarray(valid)):
    x1, y1, x2, y2 = (float(v) for v in boxes[d])
    result = {"image_id": int(image_id), "category_id": int(category_ids[int(classes[d]) - 1]),
              "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[d])}
    if masks is not None:
      result["segmentation"] = _rle(masks[d])
    if keypoints is not None:
      result["keypoints"] = _coco_keypoints(keypoints[d])
    out.append(result)
  return out


def gt_to_coco(records, class_names, category_ids) -> dict:
  """COCO ground-truth dict from records (sources.to_record: image_id, height, width, boxes in
  original pixels, classes 1..K, crowd, area, masks as compressed RLE counts or None, keypoints
  [N, K, 3] or None)."""
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
      if record.get("keypoints") is not None:
        labelled = record["keypoints"][i][:, 2] > 0
        ann["keypoints"] = _coco_keypoints(record["keypoints"][i], labelled)
        ann["num_keypoints"] = int(labelled.sum())
      annotations.append(ann)
  categories = [{"id": int(c), "name": n} for n, c in zip(class_names, category_ids)]
  return {"images": images, "annotations": annotations, "categories": categories}


def coco_metrics(gt: dict, results: list, iou_types=("bbox", "segm"), keypoint_sigmas=()) -> dict:
  """COCOeval of `results` against `gt` -> {"<iou_type>/<metric>": float} (0.0 with no results).
  iou_types: of bbox, segm, keypoints; keypoint_sigmas: the K OKS sigmas for "keypoints"."""
  if not results:
    return {f"{t}/{m}": 0.0 for t in iou_types for m in _metric_names(t)}
  coco_gt = COCO()
  coco_gt.dataset = gt
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt.createIndex()
  metrics = {}
  for iou_type in iou_types:
    # As Detectron2: without the box, loadRes takes the mask area for segm's small/medium/large.
    drop = {"bbox": ("segmentation",), "segm": ("bbox",), "keypoints": ("segmentation",)}[iou_type]
    dts = [{k: v for k, v in r.items() if k not in drop} for r in results]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
      coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dts), iou_type)
      if iou_type == "keypoints":
        coco_eval.params.kpt_oks_sigmas = np.asarray(keypoint_sigmas, np.float64)
      coco_eval.evaluate()
      coco_eval.accumulate()
      coco_eval.summarize()
    logging.info("COCO %s:\n%s", iou_type, text.getvalue())
    metrics.update({f"{iou_type}/{m}": float(v) for m, v in zip(_metric_names(iou_type), coco_eval.stats)})
  return metrics
