"""Pixels and compiled programs of each canvas choice on a photograph size distribution (numpy only).

    python scripts/canvas_stats.py [--sizes sizes.txt] [--min_size 800 --max_size 1333]

For each image: Detectron2's resized size (``data.resize.resized_size``) and its padded canvas (each
side rounded up to 32, what it feeds the backbone) against ours under each choice of ``config.data``:
inference with ``size_divisibility`` 32 / 64 / 128, one square canvas (the old 1344 x 1344), and
fixed training buckets (the smallest holding the image). Printed as markdown: mean canvas pixels per
image over Detectron2's, and how many distinct canvases (compiled programs) the set needs.

``--sizes``: a file of "height width" lines (e.g. COCO's, from its annotation JSON). Without it, a
stated COCO-like mix (not COCO itself, which is not on this machine): long side 640 px (90 %) or
500 px (10 %); short / long 3:4 (45 %), 2:3 (25 %), 1:1 (10 %), else uniform in [0.5, 1]; a quarter
portrait; 5,000 images, seed 0.
"""

import argparse

import numpy as np

from mrcnn_jax.data.canvas import fixed_canvas
from mrcnn_jax.data.resize import resized_size

# Training buckets that follow the aspect ratios photographs have: 3:4, 2:3 and wider, square, and
# the portrait twins (800 = 25 x 32).
BUCKETS = ((800, 800), (800, 1088), (800, 1216), (800, 1344), (1088, 800), (1216, 800), (1344, 800))
MLPERF_BUCKETS = ((832, 1344), (1344, 832))


def coco_like(n: int = 5000, seed: int = 0) -> np.ndarray:
  """[n, 2] (height, width) of the stated COCO-like mix."""
  rng = np.random.default_rng(seed)
  long = np.where(rng.random(n) < 0.9, 640, 500)
  kind = rng.random(n)
  ratio = np.select([kind < 0.45, kind < 0.70, kind < 0.80], [3 / 4, 2 / 3, 1.0], rng.uniform(0.5, 1.0, n))
  short = np.round(long * ratio).astype(int)
  portrait = rng.random(n) < 0.25
  return np.stack([np.where(portrait, long, short), np.where(portrait, short, long)], 1)


def _round_up(n: int, step: int) -> int:
  return -(-n // step) * step


def table(sizes: np.ndarray, min_size: int, max_size: int) -> list[str]:
  resized = [resized_size(int(h), int(w), min_size, max_size) for h, w in sizes]
  reference = np.array([_round_up(h, 32) * _round_up(w, 32) for h, w in resized], float)
  choices = {f"inference, size_divisibility {step}": [(_round_up(h, step), _round_up(w, step)) for h, w in resized]
             for step in (32, 64, 128)}
  square = _round_up(max_size, 32)
  choices[f"one square canvas {square}x{square} (before)"] = [(square, square)] * len(resized)
  choices["training, buckets " + " ".join(f"{h}x{w}" for h, w in BUCKETS)] = [
      fixed_canvas(h, w, BUCKETS) for h, w in resized]
  choices["training, MLPerf's 832x1344 / 1344x832"] = [fixed_canvas(h, w, MLPERF_BUCKETS) for h, w in resized]
  lines = [f"{len(sizes)} images, resized to short side {min_size} / long side <= {max_size}.", "",
           "| canvas choice | canvas pixels / Detectron2's (mean) | worst image | programs |", "|---|---:|---:|---:|"]
  for name, canvases in choices.items():
    ratio = np.array([h * w for h, w in canvases]) / reference
    lines.append(f"| {name} | {ratio.mean():.3f} | {ratio.max():.2f} | {len(set(canvases))} |")
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", help="file of 'height width' lines (default: the COCO-like mix)")
  parser.add_argument("--min_size", type=int, default=800)
  parser.add_argument("--max_size", type=int, default=1333)
  args = parser.parse_args(argv)
  sizes = np.loadtxt(args.sizes, dtype=int).reshape(-1, 2) if args.sizes else coco_like()
  print("\n".join(table(sizes, args.min_size, args.max_size)))


if __name__ == "__main__":
  main()
