"""export.canvas.to_canvas (resize and pad in the graph) against data.resize.resize_and_pad (PIL)."""

import jax
import numpy as np
import pytest

from mrcnn_jax.data.resize import resize_and_pad
from mrcnn_jax.export.canvas import to_canvas

SIZE = {"canvas": 64, "min_size": 48, "max_size": 64}


@pytest.mark.parametrize("height,width", [(48, 60), (100, 50), (17, 33), (300, 301), (7, 3), (48, 200)])
def test_same_canvas_as_resize_and_pad_within_one_level(height, width):
  image = np.random.default_rng(height).integers(0, 256, (height, width, 3)).astype(np.uint8)
  expected = resize_and_pad(image, **SIZE)
  got = jax.device_get(jax.jit(lambda x: to_canvas(x, **SIZE))(image))
  np.testing.assert_array_equal(got["image_size"], expected["image_size"])
  assert got["scale"] == expected["scale"]
  difference = np.abs(got["image"].astype(int) - expected["image"])
  assert difference.max() <= 1 and (difference > 0).mean() < 0.005
  if (height, width) == (48, 60):  # kept as is by both: bit-identical
    assert difference.max() == 0


def test_exact_half_sizes_may_round_the_other_way():
  """75 x 1920 -> 75 x 64 / 1920 = 2.5 rows: the host's float64 gets 2.5 and rounds it half to even, to
  2; float32's 64 / 1920 is a little above 1 / 30, so 2.5000002, rounded to 3 (export/canvas.py)."""
  image = np.zeros((75, 1920, 3), np.uint8)
  got = jax.jit(lambda x: to_canvas(x, canvas=64, min_size=64, max_size=64))(image)
  assert resize_and_pad(image, canvas=64, min_size=64, max_size=64)["image_size"].tolist() == [2, 64]
  assert np.asarray(got["image_size"]).tolist() == [3, 64]
