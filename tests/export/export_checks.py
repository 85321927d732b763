"""Export tests' helpers: run an artifact in a fresh process, compare its outputs with ``predict``'s."""

import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# Compile-light XLA in the child processes too (TensorFlow's XLA reads XLA_FLAGS).
CHILD_ENV = {"JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "true",
             "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}


def run_artifact(script: str, artifact: str, images: np.ndarray, tmp_path) -> dict:
  """``python tests/export/<script> artifact in.npz out.npz`` on ``images``; returns what it saved."""
  inputs, outputs = tmp_path / "in.npz", tmp_path / "out.npz"
  np.savez(inputs, images=images)
  proc = subprocess.run([sys.executable, os.path.join(HERE, script), artifact, str(inputs), str(outputs)],
                        env=dict(os.environ, **CHILD_ENV), capture_output=True, text=True, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(outputs) as saved:
    return dict(saved)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of boolean masks [..., H, W] -> [...]; 1 where both are empty."""
  union = (a | b).sum((-2, -1))
  return np.where(union > 0, (a & b).sum((-2, -1)) / np.maximum(union, 1), 1.0)


def same_detections(out: dict, expected) -> tuple[float, float]:
  """Asserts exported outputs equal ``expected`` (a ``Detections`` of same-size images): counts, classes
  and their order, scores to 1e-5, boxes to 1e-3 relative, mask IoU >= 0.99. Returns (largest box
  difference in px, smallest mask IoU)."""
  np.testing.assert_array_equal(out["num_detections"], expected.num_detections)
  np.testing.assert_array_equal(out["classes"], expected.classes)
  np.testing.assert_allclose(out["scores"], expected.scores, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["boxes"], expected.boxes, rtol=1e-3, atol=1e-3)
  iou = mask_iou(out["masks"], expected.masks)
  assert iou.min() >= 0.99, iou.min()
  return float(np.abs(out["boxes"] - expected.boxes).max()), float(iou.min())
