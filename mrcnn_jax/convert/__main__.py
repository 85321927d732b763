"""Command line: ``python -m mrcnn_jax.convert detectron2|torchvision SRC --out WORKDIR [--config.a.b=value ...]``.

SRC: a Detectron2 .pkl / .pth Mask R-CNN or ImageNet ResNet (Detectron2's R-50.pkl; ``convert.detectron2``),
or a torchvision .pth state dict of ``maskrcnn_resnet50_fpn`` or of a ResNet ImageNet classifier
(``convert.torchvision``). Writes a workdir (config.json + an Orbax checkpoint) that ``mrcnn_jax.load``,
``python -m mrcnn_jax.infer`` and ``python -m mrcnn_jax.evaluate`` open, or, from an ImageNet backbone,
one that training starts from (``--config.train.init_from=WORKDIR``). ``--config.*`` overrides the
converted config, e.g.
``--config.data.canvas=512 --config.data.min_size=512 --config.data.max_size=512``. Exit code 2 (one
line on stderr) for a user error: an unreadable or mismatched checkpoint, an unknown config field.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mrcnn_jax import errors
from mrcnn_jax.configs import parse_overrides

FORMATS = ("detectron2", "torchvision")


def main(argv=None) -> int:
  parser = errors.ArgumentParser(prog="python -m mrcnn_jax.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("format", choices=FORMATS, help="the checkpoint's framework")
  parser.add_argument("src", help="checkpoint file (.pkl or .pth)")
  parser.add_argument("--out", required=True, help="workdir to write (must not hold checkpoints yet)")
  args, rest = parser.parse_known_args(argv)

  def run():
    converter = importlib.import_module(f"mrcnn_jax.convert.{args.format}")
    config = converter.convert(args.src, args.out, parse_overrides(rest))
    what = (f"an ImageNet {config.model.backbone} (for --config.train.init_from={args.out})"
            if config.pretrained.backbone_only else
            f"{config.model.backbone}-FPN, {config.num_classes} classes, canvas {config.data.canvas}")
    print(f"wrote {args.out}: {what}, from {args.src} (sha256 {config.pretrained.sha256})")
  return errors.run_cli(run)


if __name__ == "__main__":
  sys.exit(main())
