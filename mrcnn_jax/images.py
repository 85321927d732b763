"""Reading image files: the one reader of every command (infer, prepare folder, benchmark).

As Detectron2's ``read_image``: the EXIF orientation is applied (a phone photo stored sideways comes
out upright), and everything becomes HxWx3 uint8 RGB: 16-bit greyscale scaled to 8 bits (not clipped
to white), palette, CMYK, greyscale and greyscale + alpha converted, alpha dropped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

ORIENTATION = 0x0112  # the EXIF tag; 1 = upright, 5-8 = stored rotated by 90 degrees
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # PIL's modes for 16-bit greyscale (PNG, TIFF)


def read_image(source) -> np.ndarray:
  """An image file (path or file object) as an upright HxWx3 uint8 RGB array."""
  with Image.open(source) as image:
    return upright_rgb(image)


def orientation(image: Image.Image) -> int:
  """The image's EXIF orientation (1 when it has none)."""
  return int(image.getexif().get(ORIENTATION, 1))


def upright_rgb(image: Image.Image) -> np.ndarray:
  """An opened image, its EXIF orientation applied, as HxWx3 uint8 RGB."""
  image = ImageOps.exif_transpose(image)
  if image.mode in SIXTEEN_BIT:
    grey = np.clip(np.asarray(image, np.int64), 0, 65535)
    grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  return np.asarray(image.convert("RGB"))
