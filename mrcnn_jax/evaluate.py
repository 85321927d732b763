"""COCO evaluation (pycocotools): box, mask and keypoint AP of a model on a prepared dataset split.

    python -m mrcnn_jax.evaluate --workdir W [--split validation]     (exit code 2: a user error)

`evaluate` runs the jitted `model.detect` over `data.eval_iterator`, maps boxes from the canvas back to
original image pixels (divide by the resize scale, clip), pastes the 28x28 mask probabilities at the
original resolution (ops.paste_masks, threshold 0.5), RLE-encodes them, maps classes 1..K to the
dataset's category ids, and scores them against ground truth read from the same prepared split.
It writes <workdir>/results_<split>.json (COCO results format) and metrics_<split>.json.
The COCO conversions and COCOeval live in `mrcnn_jax.coco`, the mapping back to original pixels in
`mrcnn_jax.postprocess`. Datasets without masks (TFDS coco/2017) and models without a mask branch
get no mask metrics; a model with a keypoint branch (config.model.keypoint.num_keypoints > 0) also
gets keypoint AP ("keypoints/AP", ...: OKS with config.data.keypoint_sigmas, else the dataset's).
"""

import argparse
import json

from etils import epath

from mrcnn_jax import checkpoints, compile_cache, errors, outputs
from mrcnn_jax.coco import coco_metrics, detections_to_coco, gt_to_coco
from mrcnn_jax.data import pipeline as data_lib
from mrcnn_jax.data import sources
from mrcnn_jax.inference import detect_canvas
from mrcnn_jax.postprocess import keypoints_to_original, to_original


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
  builder = sources.open_builder(config.data)
  with_masks = sources.has_masks(builder) and config.model.mask_on
  with_keypoints = config.model.keypoint.num_keypoints > 0
  results = []
  for batch in data_lib.eval_iterator(config, split):
    dets = detect_canvas(model, batch["image"], batch["image_size"])
    for b, image_id in enumerate(batch["image_id"]):
      if image_id < 0:
        continue
      sizes = batch["image_size"][b], batch["original_size"][b]
      boxes, masks = to_original(dets["boxes"][b], dets["masks"][b] if with_masks else None, *sizes,
                                 config.model.mask.paste_border)
      keypoints = keypoints_to_original(dets["keypoints"][b], *sizes) if with_keypoints else None
      results += detections_to_coco(image_id, boxes, dets["scores"][b], dets["classes"][b],
                                    dets["valid"][b], category_ids, masks, keypoints)
  gt = gt_to_coco(gt_records(config, split), names, category_ids)
  iou_types = ("bbox",) + ("segm",) * with_masks + ("keypoints",) * with_keypoints
  sigmas = tuple(config.data.keypoint_sigmas) or sources.keypoint_info(builder).get("keypoint_sigmas", ())
  metrics = coco_metrics(gt, results, iou_types, sigmas)
  out = epath.Path(workdir)  # local or gs://
  out.mkdir(parents=True, exist_ok=True)
  outputs.write_text(str(out / f"results_{split}.json"), json.dumps(results))
  outputs.write_text(str(out / f"metrics_{split}.json"), json.dumps(metrics, indent=2))
  return metrics


def _run(args) -> int:
  config = checkpoints.load_config(args.workdir)
  data_lib.resolve_classes(config)  # the model's classes must be the dataset's
  metrics = evaluate(checkpoints.load(args.workdir), config, args.workdir, args.split)
  print(json.dumps(metrics, indent=2))
  return 0


def main(argv=None) -> int:
  parser = errors.ArgumentParser(prog="python -m mrcnn_jax.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints)")
  parser.add_argument("--split", default=None, help="default: config.data.eval_split")
  return errors.run_cli(_run, parser.parse_args(argv))


if __name__ == "__main__":
  compile_cache.enable()
  raise SystemExit(main())
