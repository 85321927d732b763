"""COCO evaluation (pycocotools): box and mask AP of a model on a prepared dataset split.

    python -m mrcnn_jax.evaluate --workdir W [--split validation]     (exit code 2: a user error)

`evaluate` runs the jitted `model.detect` over `data.eval_iterator`, maps boxes from the canvas back to
original image pixels (divide by the resize scale, clip), pastes the 28x28 mask probabilities at the
original resolution (ops.paste_masks, threshold 0.5), RLE-encodes them, maps classes 1..K to the
dataset's category ids, and scores them against ground truth read from the same prepared split.
It writes <workdir>/results_<split>.json (COCO results format) and metrics_<split>.json.
The pure pieces (`detections_to_coco`, `gt_to_coco`, `coco_metrics`) need no model.
Metrics: {bbox,segm}/{AP,AP50,AP75,APs,APm,APl} in [0, 1]; -1 where the split has no GT of that size
(pycocotools' convention). Datasets without masks (TFDS coco/2017) get bbox metrics only.
"""

import argparse
import contextlib
import io
import json

import numpy as np
from absl import logging
from etils import epath
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn_jax import data as data_lib
from mrcnn_jax import errors
from mrcnn_jax.data import features, sources
from mrcnn_jax.predict import detect_canvas, to_original

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # the first six of COCOeval.stats


def _rle(mask: np.ndarray) -> dict:
  return {"size": [int(v) for v in mask.shape], "counts": features.encode_mask(mask).decode("ascii")}


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


def gt_records(config, split: str):
  """The split's records (images left encoded) for `gt_to_coco`."""
  builder = sources.open_builder(config.data)
  source = sources.data_source(builder, split, decode_images=False)
  with_masks = sources.has_masks(builder)
  return [sources.to_record(source[i], with_masks) for i in range(len(source))]


def evaluate(model, config, workdir: str, split: str | None = None) -> dict:
  """COCO box (and mask) AP of `model` on `split` (default config.data.eval_split); see module doc."""
  split = split or config.data.eval_split
  names, category_ids = data_lib.class_info(config)
  with_masks = sources.has_masks(sources.open_builder(config.data))
  results = []
  for batch in data_lib.eval_iterator(config, split):
    dets = detect_canvas(model, batch["image"], batch["image_size"])
    for b, image_id in enumerate(batch["image_id"]):
      if image_id < 0:
        continue
      boxes, masks = to_original(dets["boxes"][b], dets["masks"][b] if with_masks else None,
                                 batch["scale"][b], batch["original_size"][b])
      results += detections_to_coco(image_id, boxes, dets["scores"][b], dets["classes"][b],
                                    dets["valid"][b], category_ids, masks)
  gt = gt_to_coco(gt_records(config, split), names, category_ids)
  metrics = coco_metrics(gt, results, ("bbox", "segm") if with_masks else ("bbox",))
  out = epath.Path(workdir)  # local or gs://
  out.mkdir(parents=True, exist_ok=True)
  (out / f"results_{split}.json").write_text(json.dumps(results))
  (out / f"metrics_{split}.json").write_text(json.dumps(metrics, indent=2))
  return metrics


def _run(args) -> int:
  import mrcnn_jax  # pylint: disable=g-import-not-at-top  (the package imports this module)
  config = mrcnn_jax.checkpoints.load_config(args.workdir)
  data_lib.resolve_classes(config)  # the model's classes must be the dataset's
  metrics = evaluate(mrcnn_jax.load(args.workdir), config, args.workdir, args.split)
  print(json.dumps(metrics, indent=2))
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mrcnn_jax.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints)")
  parser.add_argument("--split", default=None, help="default: config.data.eval_split")
  return errors.run_cli(_run, parser.parse_args(argv))


if __name__ == "__main__":
  raise SystemExit(main())
