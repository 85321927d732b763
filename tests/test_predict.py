"""mrcnn_jax.predict (inference.py): input handling, mapping back to original pixels, one compile per canvas."""

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


def test_load_and_cli_write_pictures_and_coco_json(model, tmp_path):
  import json

  import jax
  import orbax.checkpoint as ocp
  from flax import nnx
  from PIL import Image

  from mrcnn_jax.train import checkpoint, loop

  workdir = tmp_path / "run"
  loop.save_config(model.config.as_configdict(), str(workdir))
  manager = ocp.CheckpointManager(checkpoint.checkpoint_dir(str(workdir)))
  manager.save(7, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": nnx.state(model, nnx.Param)})))
  manager.wait_until_finished()
  manager.close()

  loaded = mrcnn_jax.load(str(workdir / "checkpoints" / "7"))
  for a, b in zip(jax.tree.leaves(nnx.state(loaded, nnx.Param)), jax.tree.leaves(nnx.state(model, nnx.Param))):
    np.testing.assert_array_equal(a, b)

  paths = []
  for i, (h, w) in enumerate([(40, 70), (90, 30)]):
    paths.append(str(tmp_path / f"img{i}.png"))
    Image.fromarray(_image(h, w, seed=i)).save(paths[-1])
  out = tmp_path / "out"
  assert infer.main(["--workdir", str(workdir), "--images", *paths, "--out", str(out),
                       "--score_threshold", "0.0"]) == 0
  assert Image.open(out / "img1.png").size == (30, 90)
  results = json.loads((out / "detections.json").read_text())
  assert {r["file_name"] for r in results} == {"img0.png", "img1.png"}
  assert all(len(r["bbox"]) == 4 and "counts" in r["segmentation"] for r in results)
  with pytest.raises(SystemExit):
    infer.main(["--workdir", str(workdir), "--images", str(tmp_path / "missing.png"), "--out", str(out)])
