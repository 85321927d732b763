"""The package's shape: inference needs no training stack, and no function hides its module."""

import os
import subprocess
import sys

import mrcnn_jax
from mrcnn_jax import ops

TRAINING_STACK = ("tensorflow", "tensorflow_datasets", "grain", "pycocotools", "orbax")


def test_import_and_predict_load_no_training_stack():
  code = (
      "import sys\nimport numpy as np\nimport mrcnn_jax\n"
      "model = mrcnn_jax.build_model(mrcnn_jax.configs.get('tiny'))\n"
      "det = mrcnn_jax.predict(model, np.zeros((40, 50, 3), np.uint8), score_threshold=0.0)\n"
      "assert det.masks.shape[-2:] == (40, 50)\n"
      f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({TRAINING_STACK!r}))\n"
      "assert not loaded, f'imported {loaded}'\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true")
  result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_public_functions_do_not_shadow_their_modules():
  import mrcnn_jax.infer  # noqa: F401  pylint: disable=import-outside-toplevel  (the CLI module)
  assert callable(mrcnn_jax.predict) and mrcnn_jax.predict.__module__ == "mrcnn_jax.inference"
  for name in ("nms", "batched_nms", "roi_align", "roi_pool", "roi_warp"):
    function = getattr(ops, name)
    assert callable(function) and function.__module__.rsplit(".", 1)[-1] != name, name


def test_test_modules_have_unique_names():
  """pytest imports test files by basename (rootdir conftest, prepend mode): two of one name in
  different folders fail collection ("import file mismatch")."""
  tests = os.path.dirname(os.path.abspath(__file__))
  names = [f for _, _, files in os.walk(tests) for f in files if f.startswith("test_") and f.endswith(".py")]
  assert sorted({n for n in names if names.count(n) > 1}) == []
