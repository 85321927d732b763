"""mrcnn_jax.predict (inference.py) and the image CLI (infer.py): inputs, original pixels, compiles."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mrcnn_jax
from mrcnn_jax import infer, inference



@pytest.fixture(scope="module")
def model(make_config):
  return mrcnn_jax.build_model(make_config())


def _image(h, w, c=3, seed=0):
  shape = (h, w) if c is None else (h, w, c)
  return np.random.default_rng(seed).integers(0, 255, shape).astype(np.uint8)


def test_one_image_and_batches_of_any_size_compile_once(model):
  single = mrcnn_jax.predict(model, _image(50, 80), score_threshold=0.0)
  d = model.config.model.roi.detections_per_image
  assert single.boxes.shape == (1, d, 4) and single.masks.shape == (1, d, 50, 80)
  assert single.masks.dtype == bool and single.classes.dtype == np.int32
  assert int(single.num_detections[0]) > 0  # an untrained model still scores above 0
  compiled = inference.compiled_count()
  # New sizes, gray and RGBA inputs, same (bucketed) batch size: no new compile.
  other = mrcnn_jax.predict(model, [_image(90, 33, None)], score_threshold=0.0)
  assert inference.compiled_count() == compiled
  assert other.masks.shape == (1, d, 90, 33)
  mixed = mrcnn_jax.predict(model, [_image(64, 64, 4), _image(20, 120, 1)], score_threshold=0.0)
  assert isinstance(mixed.masks, list) and mixed.masks[1].shape == (d, 20, 120)
  again = mrcnn_jax.predict(model, [_image(64, 64, 4, seed=3), _image(100, 100, seed=4)])
  assert inference.compiled_count() == compiled + 1  # only the batch-of-2 bucket was new


def test_detections_are_the_canvas_ones_mapped_back(model):
  image = _image(100, 50)  # resized x0.64 onto the 64 px canvas (long side 100 -> 64)
  out = mrcnn_jax.predict(model, image, score_threshold=0.0)
  canvas = np.zeros((1, 64, 64, 3), np.uint8)
  from PIL import Image
  canvas[0, :64, :32] = np.asarray(Image.fromarray(image).resize((32, 64), Image.BILINEAR))
  raw = inference.detect_canvas(model, canvas, np.array([[64, 32]], np.int32), 0.0)
  n = int(out.num_detections[0])
  assert n == int(raw["valid"][0].sum())
  np.testing.assert_allclose(out.boxes[0, :n], np.minimum(raw["boxes"][0, :n] / 0.64, [50, 100, 50, 100]),
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(out.classes[0, :n], raw["classes"][0, :n])
  assert np.all(out.boxes[0, :n, 2] <= 50) and np.all(out.boxes[0, :n, 3] <= 100)
  one = out.image(0)
  assert len(one["names"]) == n and all(name in model.config.class_names for name in one["names"])


def test_thresholds_filter_detections(model):
  image = _image(64, 64)
  loose = mrcnn_jax.predict(model, image, score_threshold=0.0)
  strict = mrcnn_jax.predict(model, image, score_threshold=0.99)
  assert int(strict.num_detections[0]) == 0 < int(loose.num_detections[0])
  few = mrcnn_jax.predict(model, image, score_threshold=0.0, max_detections=2)
  assert few.boxes.shape[1] == 2
  np.testing.assert_allclose(few.scores[0], loose.scores[0, :2])


@pytest.mark.parametrize("images,match", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 5), np.uint8), "shape"),
    ([], "non-empty"),
    (np.zeros((2, 3, 10, 10, 3), np.uint8), "shape"),
])
def test_bad_images_raise_clear_errors(model, images, match):
  with pytest.raises(ValueError, match=match):
    mrcnn_jax.predict(model, images)


def test_bad_arguments_raise_clear_errors(model):
  with pytest.raises(ValueError, match="max_detections"):
    mrcnn_jax.predict(model, _image(8, 8), max_detections=1000)
  with pytest.raises(ValueError, match="score_threshold"):
    mrcnn_jax.predict(model, _image(8, 8), score_threshold=1.5)


@pytest.fixture(scope="module")
def workdir(model, tmp_path_factory):
  """A training workdir holding ``model`` (config.json + a checkpoint at step 7)."""
  import orbax.checkpoint as ocp
  from flax import nnx

  from mrcnn_jax.train import checkpoint, loop

  workdir = tmp_path_factory.mktemp("run")
  loop.save_config(model.config.as_configdict(), str(workdir))
  manager = ocp.CheckpointManager(checkpoint.checkpoint_dir(str(workdir)))
  manager.save(7, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": nnx.state(model, nnx.Param)})))
  manager.wait_until_finished()
  manager.close()
  return workdir


class _KeypointDetector:
  """A stand-in Keypoint R-CNN without a mask branch: one box with two keypoints on every image."""

  def __init__(self, config):
    self.config = config

  def detect(self, image, image_size):
    b = image.shape[0]
    keypoints = np.asarray([[10.0, 20.0, 0.7], [40.0, 70.0, 1.5]], np.float32)
    return {"boxes": np.tile(np.float32([0, 0, 32, 64]), (b, 1, 1)), "scores": np.full((b, 1), 0.9, np.float32),
            "classes": np.ones((b, 1), np.int32), "valid": np.ones((b, 1), bool),
            "keypoints": np.tile(keypoints, (b, 1, 1, 1))}


def test_keypoints_are_mapped_back_per_axis_and_not_clipped(make_config):
  config = make_config(**{"keypoint.num_keypoints": 2, "mask_on": False})
  out = mrcnn_jax.predict(_KeypointDetector(config), _image(100, 50))  # resized x0.64 to 64 x 32
  assert out.masks is None and out.keypoints.shape == (1, 1, 2, 3)
  # x 62.5 lies past the 50 px image: kept, as Detectron2 keeps it; scores unchanged (they may pass 1).
  np.testing.assert_allclose(out.keypoints[0, 0], [[15.625, 31.25, 0.7], [62.5, 109.375, 1.5]], rtol=1e-6)
  one = out.image(0)
  assert one["masks"] is None and one["keypoints"].shape == (1, 2, 3)


def _save(image, path) -> str:
  from PIL import Image
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)
  return str(path)


def test_loading_warns_of_nothing_when_nothing_is_wrong(workdir, caplog):
  """Orbax's notes on how we read a checkpoint (read only; the step's metadata file) are not shown."""
  import logging
  with caplog.at_level(logging.INFO):
    mrcnn_jax.load(str(workdir))
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_load_and_cli_write_pictures_and_coco_json(model, workdir, tmp_path):
  import jax
  from flax import nnx
  from PIL import Image

  loaded = mrcnn_jax.load(str(workdir / "checkpoints" / "7"))
  for a, b in zip(jax.tree.leaves(nnx.state(loaded, nnx.Param)), jax.tree.leaves(nnx.state(model, nnx.Param))):
    np.testing.assert_array_equal(a, b)

  paths = [_save(_image(h, w, seed=i), tmp_path / f"img{i}.png") for i, (h, w) in enumerate([(40, 70), (90, 30)])]
  out = tmp_path / "out"
  assert infer.main(["--workdir", str(workdir), "--images", *paths, "--out", str(out),
                       "--score_threshold", "0.0"]) == 0
  assert Image.open(out / "img1.png").size == (30, 90)
  results = json.loads((out / "detections.json").read_text())
  assert {(r["file_name"], r["picture"]) for r in results} == {(paths[0], "img0.png"), (paths[1], "img1.png")}
  assert all(len(r["bbox"]) == 4 and "counts" in r["segmentation"] for r in results)
  assert infer.main(["--workdir", str(workdir), "--images", str(tmp_path / "missing.png"), "--out", str(out)]) == 2


def test_cli_keeps_inputs_with_the_same_name_apart(workdir, tmp_path, capsys):
  paths = [_save(_image(40, 50, seed=i), tmp_path / d / "x.png") for i, d in enumerate(["d1", "d2"])]
  out = tmp_path / "out"
  assert infer.main(["--workdir", str(workdir), "--images", *paths, "--out", str(out),
                           "--score_threshold", "0.0"]) == 0
  assert sorted(os.listdir(out)) == ["detections.json", "x-2.png", "x.png"]
  results = json.loads((out / "detections.json").read_text())
  assert {(r["image_id"], r["file_name"], r["picture"]) for r in results} == {(0, paths[0], "x.png"),
                                                                               (1, paths[1], "x-2.png")}
  assert f"{paths[1]}: " in capsys.readouterr().out
  assert infer.picture_names(["a/x.png", "b/x.jpg", "x-2.png", "x"]) == ["x", "x-2", "x-2-2", "x-3"]


def test_cli_default_score_threshold_is_the_apis(model, workdir, tmp_path, capsys):
  image = _image(64, 64, seed=5)
  expected = int(mrcnn_jax.predict(model, image).num_detections[0])
  assert expected > 0                          # untrained: scores near 1/(K+1) = 0.2
  path = _save(image, tmp_path / "a.png")
  assert infer.main(["--workdir", str(workdir), "--images", path, "--out", str(tmp_path / "out")]) == 0
  assert f"{path}: {expected} detections -> a.png" in capsys.readouterr().out


def test_cli_scales_large_pictures_down_to_a_jpeg(workdir, tmp_path, monkeypatch):
  from PIL import Image
  monkeypatch.setattr(infer, "MAX_PICTURE_SIDE", 64)
  path = _save(_image(80, 100), tmp_path / "big.png")
  assert infer.main(["--workdir", str(workdir), "--images", path, "--out", str(tmp_path / "out")]) == 0
  with Image.open(tmp_path / "out" / "big.jpg") as picture:
    assert picture.format == "JPEG" and picture.size == (64, 51)
  assert not (tmp_path / "out" / "big.png").exists()


def test_cli_help_names_the_command_and_the_default(capsys):
  with pytest.raises(SystemExit) as exit_info:
    infer.main(["--help"])
  out = capsys.readouterr().out
  assert exit_info.value.code == 0 and out.startswith("usage: python -m mrcnn_jax.infer")
  assert "mrcnn_jax.predict (0.5: fewer, surer ones in the pictures) (default: 0.05)" in " ".join(out.split())


def test_cli_user_errors_are_one_line_and_exit_2(workdir, tmp_path, capsys):
  image = _save(_image(8, 8), tmp_path / "a.png")
  assert infer.main(["--workdir", str(tmp_path), "--images", image, "--out", str(tmp_path / "out")]) == 2
  assert capsys.readouterr().err == (f"error: {tmp_path / 'config.json'} not found: is {str(tmp_path)!r} "
                                     "a training workdir?\n")
  empty = tmp_path / "empty"
  empty.mkdir()
  shutil.copy(workdir / "config.json", empty / "config.json")      # a config but no checkpoint
  proc = subprocess.run([sys.executable, "-m", "mrcnn_jax.infer", "--workdir", str(empty), "--images", image,
                         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.splitlines()[-1] == (f"error: no checkpoint under {empty / 'checkpoints'}: has training "
                                          f"in {str(empty)!r} saved one yet?")


def test_cli_never_writes_over_its_inputs(workdir, tmp_path, capsys):
  path = _save(_image(40, 50), tmp_path / "w" / "coffee.png")
  before = open(path, "rb").read()
  assert infer.main(["--workdir", str(workdir), "--images", path, "--out", str(tmp_path / "w")]) == 2
  assert open(path, "rb").read() == before
  assert capsys.readouterr().err == (f"error: --out: writing {path} would overwrite the input {path}; "
                                     "choose another --out\n")


@pytest.mark.parametrize("args, message", [
    (["--score_threshold", "2"], "--score_threshold must be in [0, 1], got 2.0"),
    (["--nms_threshold", "1.5"], "--nms_threshold must be in (0, 1], got 1.5"),
    (["--max_detections", "0"], "--max_detections must be at least 1, got 0"),
    (["--images", "."], "--images: . is a folder: pass its image files (./*.jpg)"),
    (["--out", "a.png/out"], "--out: cannot create a.png/out: Not a directory"),
])
def test_cli_checks_its_arguments_before_loading_a_model(tmp_path, monkeypatch, capsys, args, message):
  monkeypatch.chdir(tmp_path)
  _save(_image(8, 8), tmp_path / "a.png")
  given = {"--workdir": "no-such-workdir", "--images": "a.png", "--out": "out"}
  for flag, value in zip(args[::2], args[1::2]):
    given[flag] = value
  assert infer.main([item for pair in given.items() for item in pair]) == 2
  assert capsys.readouterr().err == f"error: {message}\n"


def test_cli_argument_mistakes_are_one_line(capsys):
  with pytest.raises(SystemExit) as exit_info:
    infer.main(["--images", "a.png"])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == ("error: the following arguments are required: --workdir, --out "
                                     "(see python -m mrcnn_jax.infer --help)\n")
