"""Micro-benchmarks printed as markdown tables: jit-compiled, median wall time over repeats.

    python scripts/benchmark.py ops [--small]             # ops (NMS, RoIAlign; torchvision beside when importable)
    python scripts/benchmark.py model --config shapes_tiny [--batch 8] [--bf16] [--canvas 256]
    (torchvision's R50-FPN Mask R-CNN is timed beside; compare like with like: --config r50_fpn_coco)
    python scripts/benchmark.py export --config shapes_tiny [--batch 8] [--canvas 256] [--image 96 128]
    (the exported StableHLO, deserialized, and SavedModel, called from TensorFlow, beside mrcnn_jax.predict)
    python scripts/benchmark.py predict --workdir W --images a.png b.png [--passes 0 20]
    (mrcnn_jax.predict on image files, one per call, e.g. with converted weights, per mask.detections_per_pass)
    python scripts/benchmark.py natural --workdir W --torch_python VENV/bin/python --torch_weights tv.pth \
        --images a.png b.png [--rounds 5]
    (predict with a workdir converted from tv.pth beside torchvision's model([image]) on the same files, at
    their own sizes, calls alternated with a worker process in a private torch venv)

Each benchmark is a function `bench_*(args) -> list[Row]`; a suite is a list of them (OPS, MODEL, EXPORT,
PREDICT).
To add one, write the function and append it to its suite.
"""

import argparse
import dataclasses
import importlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Row:
  name: str            # what ran, e.g. "nms"
  case: str            # its size/settings, e.g. "N=20000, keep<=1000"
  ms: float            # median milliseconds of the jitted JAX function
  reference: str = ""  # an outside implementation timed on the same inputs, if any
  reference_ms: float | None = None


def median_ms(fn, *args, repeats):
  """Median wall milliseconds of fn(*args) over `repeats` runs, after one warm-up (compile) call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def random_boxes(rng, n, canvas=1024.0):
  """RPN-like boxes: random centres on the canvas, sides 16..256 px, uniform scores."""
  centre = rng.uniform(0, canvas, (n, 2))
  half = rng.uniform(8, 128, (n, 2))
  boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
  return boxes, rng.uniform(size=n).astype(np.float32)


def _torchvision_nms():
  """torchvision.ops.nms as a numpy-in callable, or None when torchvision is not installed."""
  try:
    import torch
    import torchvision
  except ImportError:
    return None

  def run(boxes, scores, threshold):
    return torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
  return run


def bench_nms(args):
  """ops.nms on 1k/5k/20k boxes at IoU 0.7: keeping at most 1000 (RPN) and keeping all (like torchvision)."""
  from mrcnn_jax.ops import nms

  threshold = 0.7
  reference = _torchvision_nms()
  rng = np.random.default_rng(0)
  rows = []
  for n in (1000, 5000, 20000):
    boxes, scores = random_boxes(rng, n)
    boxes_d, scores_d = jnp.asarray(boxes), jnp.asarray(scores)
    ref_ms = median_ms(reference, boxes, scores, threshold, repeats=args.repeats) if reference else None
    for keep in sorted({min(1000, n), n}):
      ms = median_ms(lambda b, s, k=keep: nms(b, s, threshold, k), boxes_d, scores_d, repeats=args.repeats)
      rows.append(Row("nms", f"N={n}, keep<={keep}", ms,
                      "torchvision.ops.nms (keeps all)" if reference else "", ref_ms))
  return rows


def _roi_align_inputs(args):
  """An FPN pyramid P2..P5 of a square canvas and RoIs whose sizes spread over all four levels."""
  canvas, rois, channels = (256, 200, 64) if args.small else (1024, 1000, 256)
  rng = np.random.default_rng(0)
  feats = [rng.standard_normal((canvas >> l, canvas >> l, channels)).astype(np.float32)
           for l in (2, 3, 4, 5)]
  centre = rng.uniform(0, canvas, (rois, 2))
  side = np.exp(rng.uniform(np.log(16), np.log(0.75 * canvas), (rois, 2)))
  boxes = np.clip(np.concatenate([centre - side / 2, centre + side / 2], 1), 0, canvas)
  return feats, boxes.astype(np.float32)


def _torchvision_roi_align():
  """Detectron2's ROIPooler done with torchvision.ops.roi_align (per level, aligned=True), as a
  callable (feats NCHW tensors, boxes, level index tensor, size, backward, sampling_ratio=2) -> None;
  None if absent."""
  try:
    import torch
    import torchvision
  except ImportError:
    return None

  def run(feats, boxes, levels, size, backward, sampling_ratio=2):
    with torch.set_grad_enabled(backward):
      out = feats[0].new_zeros((boxes.shape[0], feats[0].shape[1], size, size))
      for i, feat in enumerate(feats):
        at = torch.nonzero(levels == i).squeeze(1)
        rois = torch.cat([torch.zeros((at.shape[0], 1)), boxes[at]], dim=1)
        out[at] = torchvision.ops.roi_align(feat, rois, size, 2.0 ** -(i + 2), sampling_ratio,
                                            aligned=True)
    if backward:
      out.backward(torch.ones_like(out))
      for feat in feats:
        feat.grad = None
  return run


def bench_roi_align(args):
  """ops.multilevel_pool (RoIAlign) over P2..P5 with the fixed grid 2 and with Detectron2's adaptive
  grid (sampling_ratio 0) at its default cap G, exact for square RoIs on this canvas (the case says
  how many RoIs need more samples; they get G): forward, and forward+backward w.r.t. the features;
  torchvision's roi_align per level (same sampling_ratio) beside it when importable."""
  from mrcnn_jax.ops import fpn_levels, multilevel_pool
  from mrcnn_jax.ops.poolers import exact_grid_bound

  feats, boxes = _roi_align_inputs(args)
  feats_d, boxes_d = [jnp.asarray(f) for f in feats], jnp.asarray(boxes)
  levels = np.asarray(fpn_levels(boxes_d))
  reference = _torchvision_roi_align()
  if reference:
    import torch
    feats_t = [torch.from_numpy(f.transpose(2, 0, 1)[None].copy()).requires_grad_() for f in feats]
    boxes_t, levels_t = torch.from_numpy(boxes), torch.from_numpy(levels - 2)
  canvas = 4 * feats[0].shape[0]
  case = f"R={len(boxes)}, P2..P5 of {canvas}^2, C={feats[0].shape[-1]}"
  rows = []
  for size in (7, 14):
    cap = exact_grid_bound(size, canvas)
    need = np.ceil((boxes[:, 2:] - boxes[:, :2]) / 2.0 ** levels[:, None] / size).max(axis=1)
    for ratio in (2, 0):
      grid = f"grid {ratio}" if ratio else f"adaptive G={cap} ({np.mean(need > cap):.0%} need more)"
      pool = lambda f, b, s=size, r=ratio: multilevel_pool(f, b, s, sampling_ratio=r)
      forward = jax.jit(pool)
      backward = jax.jit(jax.grad(lambda f, b, p=pool: jnp.sum(p(f, b))))
      for label, fn, with_grad in (("fwd", forward, False), ("fwd+bwd", backward, True)):
        ms = median_ms(fn, feats_d, boxes_d, repeats=args.repeats)
        ref_ms = None
        if reference:
          ref_ms = median_ms(lambda *a, g=with_grad, s=size, r=ratio: reference(*a, s, g, r), feats_t,
                             boxes_t, levels_t, repeats=args.repeats)
        rows.append(Row("roi_align (FPN)", f"{case}, {size}x{size}, {grid}, {label}", ms,
                        "torchvision roi_align per level" if reference else "", ref_ms))
  return rows


def _config(args):
  """The --config preset with --bf16 and --canvas applied."""
  config = importlib.import_module(f"mrcnn_jax.configs.{args.config}").get_config()
  if args.bf16:
    config.model.dtype = "bfloat16"
  if args.canvas:
    config.data.canvas = config.data.min_size = config.data.max_size = args.canvas
  return config


def bench_model(args):
  """Compile time and step time of the training forward+backward, and of inference at batch 1 and B."""
  from flax import nnx
  from mrcnn_jax.model.mask_rcnn import build_model

  config = _config(args)
  model = build_model(config, seed=0)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def total_loss(params, rest, batch, key):
    return sum(nnx.merge(graphdef, params, rest).losses(batch, key).values())

  def detect(params, rest, image, size):
    return nnx.merge(graphdef, params, rest).detect(image, size)

  case = f"{args.config}, canvas {config.data.canvas}, {config.model.dtype}"
  reference = _torchvision_maskrcnn(config.data.canvas, config.num_classes, args.repeats)
  rows = []
  for name, fn, batch_size in [("train fwd+bwd", jax.value_and_grad(total_loss), args.batch),
                               ("detect", detect, 1), ("detect", detect, args.batch)]:
    batch = synthetic_batch(config, batch_size)
    inputs = ((params, rest, batch, jax.random.key(0)) if name.startswith("train")
              else (params, rest, batch["image"], batch["image_size"]))
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*inputs).compile()
    compile_s = time.perf_counter() - start
    ms = median_ms(compiled, *inputs, repeats=args.repeats)
    ref_ms = reference(name, batch) if reference else None
    rows.append(Row(name, f"{case}, batch {batch_size} (compile {compile_s:.1f} s; "
                          f"{1000 * batch_size / ms:.1f} img/s)", ms,
                    "torchvision maskrcnn_resnet50_fpn" if reference else "", ref_ms))
  return rows


def _first_and_median_ms(fn, repeats):
  """(seconds of the first call, which compiles; median ms of the next ``repeats``)."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start, median_ms(fn, repeats=repeats)


def bench_export(args):
  """Latency of the exported model, batch 1 and B: the StableHLO file deserialized and called from JAX,
  the SavedModel's serving_default called from TensorFlow (outputs fetched as numpy), each beside
  mrcnn_jax.predict on the same uint8 images (random weights; the first call compiles)."""
  import tempfile
  import tensorflow as tf
  import mrcnn_jax
  from mrcnn_jax.export import export_model

  config = _config(args)
  model = mrcnn_jax.build_model(config, seed=0)
  height, width = args.image or (config.data.canvas * 3 // 4, config.data.canvas)
  # tensorflow-cpu runs the SavedModel on the CPU, whatever JAX's device is.
  platforms = tuple(dict.fromkeys([jax.export.default_export_platform(), "cpu"]))
  rng = np.random.default_rng(0)
  rows = []
  with tempfile.TemporaryDirectory() as out:
    for batch in (1, args.batch):
      images = rng.integers(0, 256, (batch, height, width, 3), np.uint8)
      paths = export_model(model, f"{out}/{batch}", batch=batch, platforms=platforms)
      with open(paths["stablehlo"], "rb") as f:
        exported = jax.export.deserialize(f.read())
      serve = tf.saved_model.load(paths["savedmodel"]).signatures["serving_default"]
      predict_s, predict_ms = _first_and_median_ms(lambda: mrcnn_jax.predict(model, images), args.repeats)
      for name, fn in [("stablehlo (jax.export.deserialize, call)", lambda: exported.call(images)),
                       ("savedmodel (serving_default from TF)",
                        lambda: {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()})]:
        first_s, ms = _first_and_median_ms(fn, args.repeats)
        rows.append(Row(name, f"{args.config}, canvas {config.data.canvas}, {height}x{width}, batch {batch} "
                              f"(first call {first_s:.1f} s; predict's {predict_s:.1f} s)", ms,
                        "mrcnn_jax.predict", predict_ms))
  return rows


def _torchvision_maskrcnn(canvas, num_classes, repeats):
  """``(name, batch) -> median ms`` of torchvision's Mask R-CNN R50-FPN on canvas-sized images (its
  own resize pinned to the canvas), or None without torchvision. Training uses our batch's valid GT
  boxes (masks = the boxes), so both sides see the same number of foreground RoIs.
  """
  try:
    import torch
    import torchvision
  except ImportError:
    return None
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = torchvision.models.detection.maskrcnn_resnet50_fpn(
      weights=None, weights_backbone=None, num_classes=num_classes + 1, min_size=canvas,
      max_size=canvas).to(device)

  def target(boxes, classes):
    masks = torch.zeros(len(boxes), canvas, canvas, dtype=torch.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
      mask[y1:y2, x1:x2] = 1
    return {"boxes": torch.from_numpy(boxes).to(device), "masks": masks.to(device),
            "labels": torch.from_numpy(classes.astype(np.int64)).to(device)}

  def run(name, batch):
    valid = np.asarray(batch["gt_valid"])
    images = [torch.rand(3, canvas, canvas, device=device) for _ in range(len(valid))]
    targets = [target(np.asarray(batch["gt_boxes"])[b][valid[b]], np.asarray(batch["gt_classes"])[b][valid[b]])
               for b in range(len(valid))]

    def call():
      if name.startswith("train"):
        model.train()
        sum(model(images, targets).values()).backward()
      else:
        model.eval()
        with torch.no_grad():
          model(images)
      if device == "cuda":
        torch.cuda.synchronize()

    call()
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      call()
      times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
  return run


def synthetic_batch(config, batch_size):
  """A batch with the data pipeline's fields: random images and G random square instances."""
  d = config.data
  rng = np.random.default_rng(0)
  canvas, g, mg = d.canvas, d.max_instances, d.gt_mask_size
  corner = rng.uniform(0, canvas / 2, (batch_size, g, 2))
  side = rng.uniform(canvas / 16, canvas / 2, (batch_size, g, 1))
  valid = np.broadcast_to(np.arange(g) < max(1, g // 2), (batch_size, g))
  return {
      "image": jnp.asarray(rng.integers(0, 256, (batch_size, canvas, canvas, 3), np.uint8)),
      "image_size": jnp.full((batch_size, 2), canvas, jnp.int32),
      "scale": jnp.ones((batch_size,), jnp.float32),
      "original_size": jnp.full((batch_size, 2), canvas, jnp.int32),
      "image_id": jnp.arange(batch_size),
      "gt_boxes": jnp.asarray(np.concatenate([corner, corner + side], -1), jnp.float32),
      "gt_classes": jnp.asarray(np.where(valid, 1 + np.arange(g) % config.num_classes, 0), jnp.int32),
      "gt_masks": jnp.ones((batch_size, g, mg, mg), jnp.uint8),
      "gt_valid": jnp.asarray(valid),
      "gt_crowd": jnp.zeros((batch_size, g), bool),
  }


def bench_predict(args):
  """mrcnn_jax.predict on each image file with the workdir's model, one image per call, for each
  ``model.mask.detections_per_pass`` in ``args.passes``; the median over images and repeats."""
  from flax import nnx
  import mrcnn_jax
  from mrcnn_jax import checkpoints, configs
  from mrcnn_jax.images import read_image

  loaded, config = checkpoints.load(args.workdir), checkpoints.load_config(args.workdir)
  images = [read_image(path) for path in args.images]
  rows = []
  for per_pass in args.passes:
    configs.override(config, {"model.mask.detections_per_pass": per_pass})
    model = nnx.eval_shape(lambda: mrcnn_jax.build_model(config))
    nnx.update(model, nnx.state(loaded))
    counts = [int(mrcnn_jax.predict(model, [image]).num_detections[0]) for image in images]  # compiles
    times = []
    for _ in range(args.repeats):
      for image in images:
        start = time.perf_counter()
        mrcnn_jax.predict(model, [image])
        times.append((time.perf_counter() - start) * 1e3)
    rows.append(Row("predict", f"{args.workdir}, {len(images)} images, detections {counts}, "
                               f"mask.detections_per_pass={per_pass}", statistics.median(times)))
  return rows


def bench_natural(args):
  """Per image file: the median wall time of ``mrcnn_jax.predict(model, [image])`` and of torchvision's
  ``model([image])`` (scripts/oracles/tv_timing_worker.py under ``args.torch_python``), one call of each
  in turn for ``args.rounds`` rounds after a warm-up call of each, so that both see the same machine."""
  import os
  import subprocess

  import mrcnn_jax
  from mrcnn_jax.images import read_image

  model = mrcnn_jax.load(args.workdir)
  worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracles", "tv_timing_worker.py")
  torchvision = subprocess.Popen([args.torch_python, worker, args.torch_weights], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
  if torchvision.stdout.readline().strip() != "ready":
    raise SystemExit(f"{worker} did not start under {args.torch_python}")

  def theirs(path):
    torchvision.stdin.write(os.path.abspath(path) + "\n")
    torchvision.stdin.flush()
    return float(torchvision.stdout.readline().split()[0]) * 1e3

  def ours(image):
    start = time.perf_counter()
    mrcnn_jax.predict(model, [image])
    return (time.perf_counter() - start) * 1e3

  rows = []
  for path in args.images:
    image = read_image(path)
    ours(image), theirs(path)  # compile; torchvision's first call
    times = [(ours(image), theirs(path)) for _ in range(args.rounds)]
    ms, reference_ms = (statistics.median(t) for t in zip(*times))
    rows.append(Row("predict, own shape", f"{os.path.basename(path)} {image.shape[0]}x{image.shape[1]}", ms,
                    "torchvision model([image])", reference_ms))
  torchvision.stdin.close()
  torchvision.wait()
  return rows


OPS = [bench_nms, bench_roi_align]
MODEL = [bench_model]
EXPORT = [bench_export]
PREDICT = [bench_predict]
NATURAL = [bench_natural]


def markdown(rows):
  lines = ["| op | case | JAX ms (median) | reference | reference ms |", "|---|---|---:|---|---:|"]
  for r in rows:
    ref_ms = "" if r.reference_ms is None else f"{r.reference_ms:.2f}"
    lines.append(f"| {r.name} | {r.case} | {r.ms:.2f} | {r.reference} | {ref_ms} |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="suite", required=True)
  ops_parser = sub.add_parser("ops", help="pure ops (mrcnn_jax.ops)")
  ops_parser.add_argument("--repeats", type=int, default=10)
  ops_parser.add_argument("--small", action="store_true",
                          help="shrink the RoIAlign case (256^2 canvas, 200 RoIs, C=64) for slow CPUs")
  whole_model = argparse.ArgumentParser(add_help=False)  # the options of "model" and "export"
  whole_model.add_argument("--config", default="shapes_tiny", help="module name in mrcnn_jax/configs")
  whole_model.add_argument("--bf16", action="store_true", help="compute in bfloat16 (params stay fp32)")
  whole_model.add_argument("--canvas", type=int, default=0, help="override the config's canvas side")
  whole_model.add_argument("--batch", type=int, default=8)
  whole_model.add_argument("--repeats", type=int, default=5)
  sub.add_parser("model", parents=[whole_model], help="the whole model on a synthetic batch")
  export_parser = sub.add_parser("export", parents=[whole_model],
                                 help="the exported StableHLO and SavedModel against predict")
  export_parser.add_argument("--image", type=int, nargs=2, metavar=("H", "W"),
                             help="input image size (default: 3/4 of the canvas x the canvas)")
  predict_parser = sub.add_parser("predict", help="mrcnn_jax.predict on image files with a workdir's model")
  predict_parser.add_argument("--workdir", required=True, help="a training or converted workdir")
  predict_parser.add_argument("--images", nargs="+", required=True)
  predict_parser.add_argument("--passes", type=int, nargs="+", default=[0, 20],
                              help="values of model.mask.detections_per_pass to time")
  predict_parser.add_argument("--repeats", type=int, default=3)
  natural_parser = sub.add_parser("natural", help="predict beside torchvision on photographs at their own size")
  natural_parser.add_argument("--workdir", required=True, help="converted from --torch_weights")
  natural_parser.add_argument("--torch_python", required=True, help="python of a venv with torch, torchvision")
  natural_parser.add_argument("--torch_weights", required=True, help="maskrcnn_resnet50_fpn state dict (.pth)")
  natural_parser.add_argument("--images", nargs="+", required=True)
  natural_parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args(argv)

  suites = {"ops": OPS, "model": MODEL, "export": EXPORT, "predict": PREDICT, "natural": NATURAL}
  rows = [row for bench in suites[args.suite] for row in bench(args)]
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}\n")
  print(markdown(rows))


if __name__ == "__main__":
  main()
