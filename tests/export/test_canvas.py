"""export.canvas.to_canvas (resize and pad in the graph) against data.resize.resize_and_pad (PIL)."""

import jax
import numpy as np
import pytest

from mrcnn_jax import configs
from mrcnn_jax.data.resize import resize_and_pad
from mrcnn_jax.export.canvas import to_canvas

SIZE = {"min_size": 48, "max_size": 64}
DATA = configs.override(configs.get("base"), {"data.canvas": 64, "data.min_size": 48, "data.max_size": 64}).data


@pytest.mark.parametrize("height,width", [(48, 60), (100, 50), (17, 33), (300, 301), (7, 3), (48, 200)])
def test_same_canvas_as_resize_and_pad_within_one_level(height, width):
  image = np.random.default_rng(height).integers(0, 256, (height, width, 3)).astype(np.uint8)
  expected = resize_and_pad(image, DATA)
  got = jax.device_get(jax.jit(lambda x: to_canvas(x, canvas=(64, 64), **SIZE))(image))
  np.testing.assert_array_equal(got["image_size"], expected["image_size"])
  difference = np.abs(got["image"].astype(int) - expected["image"])
  assert difference.max() <= 1 and (difference > 0).mean() < 0.005
  if (height, width) == (48, 60):  # kept as is by both: bit-identical
    assert difference.max() == 0


def test_an_exact_half_size_rounds_up_on_both_paths():
  """75 x 1920 -> 75 * 64 / 1920 = 2.5 rows: the host (Detectron2's int(x + 0.5), float64) and the graph
  (floor(x + 0.5) in float32, where the size comes out as 2.5000002) both give 3."""
  image = np.zeros((75, 1920, 3), np.uint8)
  data = configs.override(configs.get("base"), {"data.canvas": 64, "data.min_size": 64, "data.max_size": 64}).data
  got = jax.jit(lambda x: to_canvas(x, canvas=(64, 64), min_size=64, max_size=64))(image)
  assert resize_and_pad(image, data)["image_size"].tolist() == [3, 64]
  assert np.asarray(got["image_size"]).tolist() == [3, 64]
