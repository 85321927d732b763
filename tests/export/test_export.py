"""mrcnn_jax.export on the shapes model (``tiny`` preset): artifacts that run without this package and
give ``predict``'s detections; bad inputs and bad workdirs fail clearly."""

import os
import shutil

import jax
import numpy as np
import pytest

import mrcnn_jax
from export_checks import mask_iou, run_artifact, same_detections
from mrcnn_jax.errors import UserError
from mrcnn_jax.export import __main__ as cli
from mrcnn_jax.export import export_model


@pytest.fixture(scope="module")
def model(make_config):
  return mrcnn_jax.build_model(make_config())


@pytest.fixture(scope="module")
def images():
  """Two 64 x 32 images: a size resize_and_pad keeps on the 64 px canvas, so both paths see the same
  canvas (like for like; resized inputs: test_resized_inputs_stay_close)."""
  return np.random.default_rng(0).integers(0, 255, (2, 64, 32, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def expected(model, images):
  return mrcnn_jax.predict(model, images)


@pytest.fixture(scope="module")
def artifacts(model, tmp_path_factory):
  return export_model(model, str(tmp_path_factory.mktemp("exported")), batch=2)


def _load_stablehlo(path):
  with open(path, "rb") as f:
    return jax.export.deserialize(f.read())


def test_stablehlo_runs_with_jax_alone_and_equals_predict(artifacts, images, expected, tmp_path):
  assert int(expected.num_detections.min()) > 0   # untrained, but scores above 0.05: something to compare
  same_detections(run_artifact("serve_stablehlo.py", artifacts["stablehlo"], images, tmp_path), expected)


def test_savedmodel_runs_with_tensorflow_alone_and_equals_predict(model, artifacts, images, expected, tmp_path):
  out = run_artifact("serve_savedmodel.py", artifacts["savedmodel"], images, tmp_path)
  same_detections(out, expected)
  assert list(out["class_names"]) == list(model.config.class_names)
  dtype_error, rank_error = out["errors"]
  assert "expected to be a uint8 tensor but is a float tensor" in dtype_error
  assert "Shape of tensor images [64,32,3] is not compatible with expected shape [2,?,?,3]" in rank_error


def test_class_names_file(model, artifacts):
  with open(os.path.join(os.path.dirname(artifacts["stablehlo"]), "class_names.txt")) as f:
    assert f.read().splitlines() == list(model.config.class_names)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 40, 30, 3), np.float32), r"Dtype mismatch for args\[0\]: expected uint8 and called with float32"),
    (np.zeros((40, 30, 3), np.uint8), r"Rank mismatch for args\[0\]: expected \(2, h, w, 3\)"),
    (np.zeros((2, 40, 30, 4), np.uint8), r"Shape mismatch for args\[0\].shape\[3\]"),
])
def test_stablehlo_rejects_wrong_dtype_rank_and_channels(artifacts, bad, match):
  with pytest.raises(ValueError, match=match):
    _load_stablehlo(artifacts["stablehlo"]).call(bad)


def test_resized_inputs_stay_close(model, artifacts):
  """100 x 50 images are resized (x0.64) inside the export and by PIL in predict: canvases within one
  grey level (export/canvas.py), so looser bounds than like for like (measured: scores within 3e-5,
  boxes 1.2e-3 px, mask IoU >= 0.92: untrained mask probabilities sit near the 0.5 threshold)."""
  images = np.random.default_rng(1).integers(0, 255, (2, 100, 50, 3)).astype(np.uint8)
  out = jax.device_get(_load_stablehlo(artifacts["stablehlo"]).call(images))
  ref = mrcnn_jax.predict(model, images)
  np.testing.assert_array_equal(out["classes"], ref.classes)
  np.testing.assert_allclose(out["scores"], ref.scores, atol=1e-3)
  np.testing.assert_allclose(out["boxes"], ref.boxes, atol=0.1)
  assert mask_iou(out["masks"], ref.masks).min() > 0.9


def test_cli_exports_a_workdir_and_names_a_missing_checkpoint(model, tmp_path, capsys):
  from flax import nnx
  from mrcnn_jax.checkpoints import save_config
  from mrcnn_jax.train.checkpoint import save_imported

  workdir = tmp_path / "run"
  save_config(model.config, str(workdir))
  save_imported(str(workdir), nnx.state(model, nnx.Param), {}, step=3)
  out = tmp_path / "out"
  checkpoint = workdir / "checkpoints" / "3"
  assert cli.main(["--workdir", str(checkpoint), "--out", str(out), "--format", "stablehlo"]) == 0
  assert capsys.readouterr().out == f"wrote stablehlo: {out / 'model.stablehlo'}\n"
  (images,) = _load_stablehlo(out / "model.stablehlo").in_avals   # parameters baked in: one argument
  assert images.shape[0] == 1 and images.dtype == np.uint8

  shutil.rmtree(workdir / "checkpoints")
  assert cli.main(["--workdir", str(workdir), "--out", str(out)]) == 2
  assert capsys.readouterr().err == (f"error: no checkpoint under {workdir / 'checkpoints'}: has training in "
                                     f"{str(workdir)!r} saved one yet?\n")


@pytest.mark.parametrize("kwargs,match", [({"formats": ("onnx",)}, "formats must be some of"),
                                          ({"batch": 0}, "batch must be at least 1")])
def test_bad_arguments_are_user_errors(model, tmp_path, kwargs, match):
  with pytest.raises(UserError, match=match):
    export_model(model, str(tmp_path), **kwargs)
