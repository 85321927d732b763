"""The one image reader (mrcnn_jax/images.py): EXIF orientation, 16-bit, palette, CMYK, LA."""

import io

import numpy as np
from PIL import Image

from mrcnn_jax.images import read_image


def _file(image: Image.Image, fmt: str = "PNG", **kwargs) -> io.BytesIO:
  data = io.BytesIO()
  image.save(data, format=fmt, **kwargs)
  data.seek(0)
  return data


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits_not_clipped():
  grey = np.array([[0, 256, 32768, 65535]], np.uint16)
  got = read_image(_file(Image.fromarray(grey)))
  assert got.dtype == np.uint8 and got.shape == (1, 4, 3)
  np.testing.assert_array_equal(got[..., 0], [[0, 1, 128, 255]])


def test_exif_orientation_is_applied():
  stored = np.zeros((40, 60, 3), np.uint8)                 # 60 wide, 40 high as stored
  stored[:, :10] = 255                                      # white band on the stored left edge
  exif = Image.Exif()
  exif[0x0112] = 6                                          # "rotate 90 CW to view"
  got = read_image(_file(Image.fromarray(stored), "JPEG", exif=exif, quality=95))
  assert got.shape == (60, 40, 3)                           # upright: 40 wide, 60 high
  assert got[:10].mean() > 200 and got[20:].mean() < 50     # the band is now on top


def test_palette_cmyk_and_grey_with_alpha_become_rgb():
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
  palette = Image.fromarray(rgb).quantize(8)
  np.testing.assert_array_equal(read_image(_file(palette)), np.asarray(palette.convert("RGB")))
  cmyk = Image.fromarray(rgb).convert("CMYK")
  assert np.abs(read_image(_file(cmyk, "JPEG", quality=100)).astype(int) - rgb).max() < 40
  la = Image.fromarray(rgb[..., 0]).convert("LA")
  np.testing.assert_array_equal(read_image(_file(la)), np.repeat(rgb[..., :1], 3, axis=-1))
