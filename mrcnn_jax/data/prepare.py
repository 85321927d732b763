"""Prepares datasets once (TensorFlow is needed here only) as random-access ArrayRecord files.

  python -m mrcnn_jax.data.prepare shapes --data_dir D [--seed S --num_train N --num_val M --image_size P]
  python -m mrcnn_jax.data.prepare keypoints --data_dir D [the same options]   (stick figures, figures.py)
  python -m mrcnn_jax.data.prepare folder --name NAME --data_dir D \
      --annotations [SPLIT=]A.json ... --images [SPLIT=]DIR ... [--skip_bad_images]
  python -m mrcnn_jax.data.prepare coco --data_dir D [--download_dir X]

`folder` takes one annotation file and one image folder per split (a bare path means split "train").
`coco` runs TFDS's own coco/2017 builder, which downloads the zips itself (or finds them in
--download_dir) and stores boxes only, no masks: for COCO instance masks use `folder` on
annotations/instances_{train,val}2017.json + {train,val}2017/ (see folder_builder.py).
Each prints the `config.data.name` to use, the dataset's classes, and a summary of what was kept
and dropped (naming the first ten dropped annotations and skipped images). Exit codes: 0 done, 2 a
user error (one line on stderr: malformed annotations, a bad image, ...).
"""

import argparse
import os
import sys

import ml_collections
import tensorflow_datasets as tfds

from mrcnn_jax import errors
from mrcnn_jax.data import figures_builder, folder_builder, shapes_builder, sources

SHOWN = 10  # dropped annotations and skipped images named per split


def _prepared(builder) -> bool:
  return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))


def _build(builder) -> bool:
  """Generates the dataset unless it exists; returns whether it was generated now."""
  if _prepared(builder):
    return False
  builder.download_and_prepare()
  return True


def _split_sizes(builder) -> str:
  return ", ".join(f"{s}: {info.num_examples} images" for s, info in builder.info.splits.items())


def prepare_shapes(data_dir: str, seed: int = 0, num_train: int = 2000, num_val: int = 200,
                   image_size: int = 128):
  """Builds mrcnn_shapes; returns (data.name, {split: counts} ({} if it existed), builder)."""
  config = shapes_builder.shapes_config(seed, num_train, num_val, image_size)
  builder = shapes_builder.MrcnnShapes(config=config, data_dir=data_dir, file_format="array_record")
  name = "mrcnn_shapes" if config is shapes_builder.DEFAULT else f"mrcnn_shapes/{config.name}"
  return name, (builder.stats if _build(builder) else {}), builder


def prepare_keypoints(data_dir: str, seed: int = 0, num_train: int = 2000, num_val: int = 200,
                      image_size: int = 128):
  """Builds mrcnn_figures; returns (data.name, {split: counts} ({} if it existed), builder)."""
  config = figures_builder.figures_config(seed, num_train, num_val, image_size)
  builder = figures_builder.MrcnnFigures(config=config, data_dir=data_dir, file_format="array_record")
  name = "mrcnn_figures" if config is figures_builder.DEFAULT else f"mrcnn_figures/{config.name}"
  return name, (builder.stats if _build(builder) else {}), builder


def _split_paths(values, what: str) -> dict:
  paths = {}
  for value in values:
    split, sep, path = value.partition("=")
    split, path = (split, path) if sep else ("train", value)
    if split in paths:
      raise errors.UserError(f"--{what}: split {split!r} given twice")
    paths[split] = os.path.abspath(os.path.expanduser(path))
  return paths


def prepare_folder(name: str, data_dir: str, annotations, images, skip_bad_images: bool = False):
  """Builds coco_folder/<name> from [SPLIT=]path lists; returns (data.name, {split: Report}, builder)."""
  config = folder_builder.FolderConfig(
      name=name, annotations=_split_paths(annotations, "annotations"),
      images=_split_paths(images, "images"), skip_bad_images=skip_bad_images)
  builder = folder_builder.CocoFolder(config=config, data_dir=data_dir, file_format="array_record")
  saved = builder.info.metadata.get("annotations_sha256") if _prepared(builder) else None
  if saved is not None and saved != builder.annotations_sha256():
    raise errors.UserError(f"dataset {name!r} was prepared at {builder.data_dir} from other annotations: delete "
                           "that folder to prepare it again, or give another --name")
  return name, (builder.reports if _build(builder) else {}), builder


def prepare_coco(data_dir: str, download_dir: str | None = None):
  """Runs TFDS's coco/2017 builder (boxes only); returns ("coco/2017", {}, builder)."""
  builder = tfds.builder("coco/2017", data_dir=data_dir, file_format="array_record")
  if not _prepared(builder):
    builder.download_and_prepare(download_dir=download_dir)
  return "coco/2017", {}, builder


def _print_summary(data_dir: str, name: str, stats: dict, builder) -> None:
  names = tuple(builder.info.features["objects"]["label"].names)
  print(f"\nconfig.data.name = {name!r}, config.data.data_dir = {data_dir!r}\n"
        f"config.num_classes = {len(names)}, config.class_names = {names}")
  keypoint_names = tuple(sources.keypoint_info(builder).get("keypoint_names", ()))
  if keypoint_names:
    print(f"config.model.keypoint.num_keypoints = {len(keypoint_names)}, "
          f"config.data.keypoint_names = {keypoint_names}")
  if not stats:
    print(f"already prepared at {builder.data_dir} (delete it to rebuild): {_split_sizes(builder)}")
    return
  for split, report in stats.items():
    counts = dict(report) if isinstance(report, dict) else dict(vars(report))
    dropped, skipped = counts.pop("dropped", []), counts.get("skipped_bad_images", [])
    if "skipped_bad_images" in counts:
      counts["skipped_bad_images"] = len(skipped)
    print(f"  {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    _print_first(dropped, "dropped")
    _print_first(skipped, "skipped")


def _print_first(messages: list, verb: str) -> None:
  for message in messages[:SHOWN]:
    print(f"    {verb} {message}")
  if len(messages) > SHOWN:
    print(f"    ... and {len(messages) - SHOWN} more {verb}")


def export_images(name: str, data_dir: str, split: str, num: int, out: str) -> list[str]:
  """Writes the first ``num`` images of a prepared split as PNG files (e.g. to try ``predict`` on)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  builder = sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))
  source = sources.data_source(builder, split)
  os.makedirs(out, exist_ok=True)
  paths = []
  for i in range(min(num, len(source))):
    example = source[i]
    record = sources.to_record(example, with_masks=False)
    path = os.path.join(out, f"{split}_{record['image_id']:06d}.png")
    Image.fromarray(record["image"]).save(path)
    paths.append(path)
  return paths


def _parser() -> argparse.ArgumentParser:
  parser = errors.ArgumentParser(prog="python -m mrcnn_jax.data.prepare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="kind", required=True)

  def command(name, description):
    p = sub.add_parser(name, help=description, description=description,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", required=True, help="TFDS data directory (config.data.data_dir)")
    return p

  for name, description in (("shapes", "synthetic shapes (mrcnn_shapes)"),
                            ("keypoints", "synthetic stick figures with keypoints (mrcnn_figures)")):
    p = command(name, description)
    p.add_argument("--seed", type=int, default=0, help="random seed of the images")
    p.add_argument("--num_train", type=int, default=2000, help="training images")
    p.add_argument("--num_val", type=int, default=200, help="validation images")
    p.add_argument("--image_size", type=int, default=128, help="image side in pixels")
  p = command("folder", "a COCO-format annotation JSON + image folder per split")
  p.add_argument("--name", required=True, help="dataset name (then config.data.name)")
  p.add_argument("--annotations", nargs="+", required=True, metavar="[SPLIT=]JSON",
                 help="COCO instances JSON per split (a bare path is split 'train')")
  p.add_argument("--images", nargs="+", required=True, metavar="[SPLIT=]DIR",
                 help="image folder per split, holding each image's file_name")
  p.add_argument("--skip_bad_images", action="store_true",
                 help="skip (and list) corrupt or missing images instead of stopping")
  p = command("coco", "TFDS coco/2017 (boxes only; downloads ~25 GB)")
  p.add_argument("--download_dir", default=None,
                 help="where the COCO zips are (or go); default: TFDS's, under --data_dir")
  p = command("export", "write the first images of a prepared split as PNG files")
  p.add_argument("--name", required=True, help="config.data.name of the prepared dataset")
  p.add_argument("--split", default="validation", help="split to read")
  p.add_argument("--num", type=int, default=8, help="how many images (at most the split's size)")
  p.add_argument("--out", required=True, help="folder for the PNG files")
  return parser


def _run(args) -> int:
  data_dir = os.path.expanduser(args.data_dir)
  if args.kind == "export":
    paths = export_images(args.name, data_dir, args.split, args.num, args.out)
    print("\n".join(paths))
    if len(paths) < args.num:
      print(f"note: split {args.split!r} has {len(paths)} images: exported {len(paths)} of the "
            f"{args.num} asked for", file=sys.stderr)
    return 0
  if args.kind in ("shapes", "keypoints"):
    build = prepare_shapes if args.kind == "shapes" else prepare_keypoints
    result = build(data_dir, args.seed, args.num_train, args.num_val, args.image_size)
  elif args.kind == "folder":
    result = prepare_folder(args.name, data_dir, args.annotations, args.images, args.skip_bad_images)
  else:
    result = prepare_coco(data_dir, args.download_dir)
  _print_summary(data_dir, *result)
  return 0


def main(argv=None) -> int:
  return errors.run_cli(_run, _parser().parse_args(argv))


if __name__ == "__main__":
  sys.exit(main())
