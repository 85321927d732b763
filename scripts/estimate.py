"""Accelerator estimates for Mask R-CNN R50-FPN, from programs compiled on this host (no accelerator).

    python scripts/estimate.py [--batches 2 8 16] [--canvas 1024] [--dtypes float32 bfloat16]
    python scripts/estimate.py --detect-canvases 800x1216 1344x1344   # detect's FLOPs per canvas only

The programs are the real ones: the jitted train step (forward, backward and SGD update; frozen BN
and ``freeze_at=2``, the fine-tuning setting of ImageNet weights) and ``detect``, built from
``configs/r50_fpn_coco`` on abstract inputs, so nothing of batch size is ever allocated. Printed as
markdown:
  1. per batch and dtype: XLA's cost analysis (FLOPs, bytes accessed) and the memory analysis of the
     program compiled for this host (arguments + outputs + temporaries - aliased: its peak bytes);
  2. FLOPs spent on padded slots: the static bounds of the mask head (foreground RoIs in training,
     detection slots in inference) against what a dynamic-shape implementation would run at a
     stated fill, from FLOP differences between two bounds (NMS is left out: it runs in loops
     whose trip counts cost analysis does not know, so its FLOPs are not counted);
  3. per chip: the largest batch whose peak fits its memory (linear fit over the batches), the step
     time at 40 % MFU of its peak and the img/s that implies, beside MLPerf's ~150 img/s per H100.
All of it is an estimate: the host's memory plan stands in for the accelerator's (fusion, layouts
and a TPU's 128-lane padding differ), and the MFU is assumed, not measured.
"""

import argparse
import dataclasses
import importlib
import time

import jax
import numpy as np
from flax import nnx

from mrcnn_jax import configs
from mrcnn_jax.data.batch_spec import field_specs
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import mesh as mesh_lib
from mrcnn_jax.train import optimizer as optimizer_lib
from mrcnn_jax.train import train_step as train_step_lib

GIB = 2 ** 30
MFU = 0.4
MLPERF_H100_IMG_S = 150


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  peak_tflops: dict   # dtype -> dense TFLOP/s the compute runs at
  memory_gib: int


# Dense peaks. f32 on TPU: XLA's default precision runs f32 matmuls and convs as bf16 passes; on
# H100 f32 convs run as TF32 by default (half the bf16 rate).
CHIPS = (
    Chip("TPU v5e", {"float32": 197, "bfloat16": 197}, 16),
    Chip("TPU v4", {"float32": 275, "bfloat16": 275}, 32),
    Chip("H100 SXM", {"float32": 494, "bfloat16": 989}, 80),
)


@dataclasses.dataclass
class Program:
  name: str
  dtype: str
  batch: int
  flops: float
  bytes_accessed: float
  peak_bytes: int | None
  compile_s: float


def r50_config(canvas: int, dtype: str, overrides: dict | None = None):
  config = importlib.import_module("mrcnn_jax.configs.r50_fpn_coco").get_config()
  configs.override(config, {"data.canvas": canvas, "data.max_size": canvas, "data.min_size": canvas,
                            "model.dtype": dtype, "model.norm": "frozen_bn", "model.freeze_at": 2,
                            # One pass over all detection slots: cost analysis counts a loop body once.
                            "model.mask.detections_per_pass": 0,
                            **(overrides or {})})
  return config


def abstract_batch(config, batch: int, canvas: tuple[int, int] | None = None) -> dict:
  """Abstract batch on ``canvas`` (h, w; default: the config's square canvas)."""
  d = config.data
  canvas = canvas or (d.canvas, d.canvas)
  return {name: jax.ShapeDtypeStruct((batch, *shape), dtype)
          for name, (shape, dtype) in field_specs(canvas, d.max_instances, d.gt_mask_size).items()}


def split_abstract(config):
  """``(graphdef, params, batch_stats)`` of the model, abstract: nothing is allocated."""
  return nnx.split(nnx.eval_shape(lambda: build_model(config)), nnx.Param, nnx.BatchStat)


def lower_train(config, batch: int):
  """The trainer's own step (``train_step.make_train_step``) lowered for one device."""
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  graphdef, params, batch_stats = split_abstract(config)
  tx, _ = optimizer_lib.make_optimizer(config.train, batch, config.model.freeze_at)
  step = train_step_lib.make_train_step(graphdef, config.train, batch, mesh, config.model.freeze_at)
  state = jax.eval_shape(lambda p, s: train_step_lib.init_state(p, s, tx, 0, mesh), params, batch_stats)
  return jax.jit(step).lower(state, abstract_batch(config, batch), optimizer_lib.schedule_lengths(config.train))


def lower_detect(config, batch: int, canvas: tuple[int, int] | None = None):
  graphdef, params, batch_stats = split_abstract(config)
  spec = abstract_batch(config, batch, canvas)

  def detect(params, batch_stats, image, image_size):
    return nnx.merge(graphdef, params, batch_stats).detect(image, image_size)
  return jax.jit(detect).lower(params, batch_stats, spec["image"], spec["image_size"])


def flops(lowered) -> float:
  return float(lowered.cost_analysis()["flops"])


def measure(name: str, lowered, dtype: str, batch: int, compile_memory: bool) -> Program:
  cost = lowered.cost_analysis()
  peak, start = None, time.perf_counter()
  if compile_memory:
    m = lowered.compile().memory_analysis()
    peak = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)
  return Program(name, dtype, batch, float(cost["flops"]), float(cost["bytes accessed"]), peak,
                 time.perf_counter() - start)


def padding_rows(canvas: int) -> list[str]:
  """FLOPs per padded slot, from the difference between two static bounds (float32, batch 2/1)."""
  def per_slot(lower, batch, field, big, small):
    f_big = flops(lower(r50_config(canvas, "float32", {field: big}), batch))
    f_small = flops(lower(r50_config(canvas, "float32", {field: small}), batch))
    return f_big, (f_big - f_small) / (batch * (big - small))

  rows = []
  base = r50_config(canvas, "float32")
  mask_slots = int(base.model.roi.batch_per_image * base.model.roi.positive_fraction)
  total, per = per_slot(lower_train, 2, "model.mask.rois_per_image", mask_slots, mask_slots // 2)
  rows.append(("train: mask head + loss on foreground RoI slots", mask_slots, per, total, 2))
  total, per = per_slot(lower_detect, 1, "model.roi.detections_per_image",
                        base.model.roi.detections_per_image, base.model.roi.detections_per_image // 2)
  rows.append(("detect: mask head on detection slots", base.model.roi.detections_per_image, per, total, 1))
  lines = ["| static bound | slots per image | GFLOP per slot | share of the program at 100 % "
           "/ 50 % / 25 % real slots |", "|---|---:|---:|---|"]
  for name, slots, per, total, batch in rows:
    shares = " / ".join(f"{100 * (1 - fill) * slots * per * batch / total:.1f} %" for fill in (1, .5, .25))
    lines.append(f"| {name} | {slots} | {per / 1e9:.3f} | {shares} |")
  return lines


def canvas_rows(canvases: list[tuple[int, int]]) -> list[str]:
  """detect's FLOPs (batch 1, float32, cost analysis only) per (h, w) canvas, against the last one."""
  config = r50_config(max(max(c) for c in canvases), "float32")
  counted = [(c, flops(lower_detect(config, 1, c))) for c in canvases]
  lines = ["| detect canvas | pixels | TFLOP | vs " + "x".join(map(str, canvases[-1])) + " |", "|---|---:|---:|---:|"]
  for (h, w), f in counted:
    lines.append(f"| {h}x{w} | {h * w:,} | {f / 1e12:.3f} | {f / counted[-1][1]:.2f} |")
  return lines


def chip_rows(programs: list[Program]) -> list[str]:
  batches = " / ".join(str(b) for b in sorted({p.batch for p in programs}))
  lines = [f"| chip | dtype | largest batch that fits (train) | step time at 40 % MFU, batch {batches} "
           "| img/s per chip | vs MLPerf ~150 img/s per H100 |", "|---|---|---:|---|---:|---:|"]
  for chip in CHIPS:
    for dtype in sorted({p.dtype for p in programs}):
      train = sorted((p for p in programs if p.name == "train" and p.dtype == dtype), key=lambda p: p.batch)
      if len(train) < 2 or any(p.peak_bytes is None for p in train):
        continue
      slope, intercept = np.polyfit([p.batch for p in train], [p.peak_bytes for p in train], 1)
      fits = int((chip.memory_gib * GIB - intercept) // slope)
      per_image = np.polyfit([p.batch for p in train], [p.flops for p in train], 1)[0]
      peak = chip.peak_tflops[dtype] * 1e12 * MFU
      times = " / ".join(f"{1e3 * p.flops / peak:.0f} ms" for p in train)
      img_s = peak / per_image
      ratio = f"{img_s / MLPERF_H100_IMG_S:.2f}x" if chip.name.startswith("H100") else ""
      lines.append(f"| {chip.name} | {dtype} | {max(fits, 0)} | {times} | {img_s:.0f} | {ratio} |")
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batches", type=int, nargs="+", default=[2, 8, 16])
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
  parser.add_argument("--canvas", type=int, default=1024)
  parser.add_argument("--no-memory", action="store_true", help="cost analysis only: skip compiling")
  parser.add_argument("--detect-canvases", nargs="+", default=[], metavar="HxW",
                      help="only print detect's FLOPs on these canvases (the last is the reference)")
  args = parser.parse_args(argv)
  if args.detect_canvases:
    print("\n".join(canvas_rows([tuple(int(v) for v in c.split("x")) for c in args.detect_canvases])))
    return

  programs = []
  for dtype in args.dtypes:
    for batch in args.batches:
      config = r50_config(args.canvas, dtype)
      for name, lower, b in (("train", lower_train, batch), ("detect", lower_detect, batch)):
        p = measure(name, lower(config, b), dtype, b, not args.no_memory)
        print(f"# {name} {dtype} batch {b}: {p.flops / 1e12:.2f} TFLOP, peak "
              f"{(p.peak_bytes or 0) / GIB:.1f} GiB (compiled in {p.compile_s:.0f} s)", flush=True)
        programs.append(p)

  print(f"\nR50-FPN, canvas {args.canvas}, compiled on {jax.devices()[0].device_kind} "
        f"(jax {jax.__version__})\n")
  print("| program | dtype | batch | TFLOP | per image | GB accessed | peak memory (GiB) |")
  print("|---|---|---:|---:|---:|---:|---:|")
  for p in programs:
    peak = "" if p.peak_bytes is None else f"{p.peak_bytes / GIB:.1f}"
    print(f"| {p.name} | {p.dtype} | {p.batch} | {p.flops / 1e12:.2f} | {p.flops / p.batch / 1e12:.3f} "
          f"| {p.bytes_accessed / 1e9:.1f} | {peak} |")
  print()
  print("\n".join(padding_rows(args.canvas)))
  print()
  print("\n".join(chip_rows(programs)))


if __name__ == "__main__":
  main()
