"""Which canvas an image goes on (mrcnn_jax/data/canvas.py), and the one-line errors for bad choices."""

import pytest

from mrcnn_jax import configs
from mrcnn_jax.data import canvas
from mrcnn_jax.errors import UserError


def data_config(**fields):
  return configs.override(configs.get("base"), {f"data.{k}": v for k, v in fields.items()}).data


def test_the_smallest_listed_canvas_holding_the_image():
  listed = ((800, 1344), (800, 1088), (1088, 800), (800, 800))
  assert canvas.fixed_canvas(800, 1067, listed) == (800, 1088)
  assert canvas.fixed_canvas(800, 1200, listed) == (800, 1344)
  assert canvas.fixed_canvas(1067, 800, listed) == (1088, 800)
  assert canvas.fixed_canvas(600, 600, listed) == (800, 800)
  with pytest.raises(UserError, match=r"a resized image of 1200x800 fits none .*config.data.canvases"):
    canvas.fixed_canvas(1200, 800, listed)


def test_size_divisibility_rounds_each_side_up():
  data = data_config(canvas=1344, size_divisibility=32, min_size=800, max_size=1333)
  assert canvas.inference_canvas(800, 1200, data) == (800, 1216)
  assert canvas.inference_canvas(1163, 800, data) == (1184, 800)
  assert canvas.inference_canvas(800, 1216, data) == (800, 1216)
  data = data_config(canvas=1344, size_divisibility=128, min_size=800, max_size=1333)
  assert canvas.inference_canvas(800, 1200, data) == (896, 1280)


def test_without_size_divisibility_the_square_canvas():
  data = data_config(canvas=512, min_size=512, max_size=512)
  assert canvas.inference_canvas(384, 512, data) == (512, 512)
  assert canvas.export_canvases(data) == ((512, 512),)


def test_export_has_a_landscape_and_a_portrait_canvas_holding_every_resized_image():
  data = data_config(canvas=1344, size_divisibility=32, min_size=800, max_size=1333)
  assert canvas.export_canvases(data) == ((800, 1344), (1344, 800))


@pytest.mark.parametrize("fields, message", [
    ({"canvas": 100}, r"config.data.canvas: every canvas must be \(height, width\), each a positive multiple of 32, got 100"),
    ({"canvases": ((800, 1000),)}, r"config.data.canvases: .* got \(800, 1000\)"),
    ({"canvas": 512, "size_divisibility": 48}, r"config.data.size_divisibility must be 0 .* or a multiple of 32, got 48"),
    ({"canvas": 512, "min_size": 600, "max_size": 512}, r"config.data.min_size \(600\) must be <= max_size \(512\)"),
    ({"canvases": ((512, 768), (768, 512)), "min_size": 512, "max_size": 800},
     r"max_size \(800\) must be <= the longest side of config.data.canvases \(768\)"),
])
def test_bad_choices_are_one_line_naming_the_field(fields, message):
  with pytest.raises(UserError, match=message) as error:
    canvas.check(data_config(**fields))
  assert "\n" not in str(error.value)


def test_describe():
  assert canvas.describe(data_config(canvas=1344, size_divisibility=32, min_size=800, max_size=1333)) == (
      "resized to 800 / 1333, padded to a multiple of 32")
  assert canvas.describe(data_config(canvases=((512, 768), (768, 512)), min_size=512, max_size=768)) == (
      "resized to 512 / 768, on canvas 512x768 or 768x512")
