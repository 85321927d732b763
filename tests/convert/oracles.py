"""Where the parity references live (``$MRCNN_ORACLES``, else ../shared/oracles beside the repository),
and the Detectron2 oracle's weight generator imported from there (tests skip without them)."""

import importlib.util
import os

import pytest

ORACLES = os.environ.get("MRCNN_ORACLES",
                         os.path.normpath(os.path.join(os.path.dirname(__file__), "../../../shared/oracles")))
DETECTRON2 = os.path.join(ORACLES, "detectron2_r50_fpn")


def d2_weights():
  """The oracle's ``d2_weights`` module (``generate(seed)``, ``write``, ``param_shapes``), or a skip."""
  script = os.path.join(DETECTRON2, "d2_weights.py")
  if not os.path.exists(script):
    pytest.skip(f"no Detectron2 oracle at {script} (set MRCNN_ORACLES)")
  spec = importlib.util.spec_from_file_location("d2_weights", script)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
