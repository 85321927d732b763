"""Command line: ``python -m mrcnn_jax.export --workdir W --out DIR [--format stablehlo|savedmodel|both]``.

Writes the model of a training or converted workdir (latest checkpoint, or ``W/checkpoints/<step>``)
for serving; see ``mrcnn_jax.export`` for the files and how to load them. Exit code 2 (one line on
stderr) for a user error: a workdir without config.json or checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from mrcnn_jax import errors

CHOICES = {"stablehlo": ("stablehlo",), "savedmodel": ("savedmodel",), "both": ("stablehlo", "savedmodel")}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mrcnn_jax.export", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="training workdir, or W/checkpoints/<step>")
  parser.add_argument("--out", required=True, help="folder for the exported files")
  parser.add_argument("--format", choices=CHOICES, default="both", help="what to write (default: both)")
  parser.add_argument("--batch", type=int, default=1, help="images per call, fixed at export (default: 1)")
  parser.add_argument("--platforms", nargs="+", default=None, choices=("cpu", "cuda", "rocm", "tpu"),
                      help="where the artifacts may run: cpu cuda tpu (default: this machine's JAX backend)")
  args = parser.parse_args(argv)

  def run():
    from mrcnn_jax.export import export_model  # pylint: disable=import-outside-toplevel
    paths = export_model(args.workdir, args.out, formats=CHOICES[args.format], batch=args.batch,
                         platforms=args.platforms)
    for name, path in paths.items():
      print(f"wrote {name}: {path}")
  return errors.run_cli(run)


if __name__ == "__main__":
  sys.exit(main())
