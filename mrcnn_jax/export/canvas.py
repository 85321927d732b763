"""``data.resize.resize_and_pad`` inside the exported graph: an image of any (symbolic) size -> a canvas.

The same size rule (short side to ``min_size`` unless the long side would pass ``max_size``, aspect
kept, sides rounded with ``int(x + 0.5)``, top-left on a zero canvas) and the same resampling as PIL's BILINEAR resize: a triangle filter
widened by the downscale factor, the width pass first, each pass rounded to uint8. What still differs
from the host path, measured: pixel values by at most 1 on under 0.3 % of pixels (PIL's fixed-point
filter weights), and the resized size by 1 px when the exact size is within float32's rounding of a tie (x.5), where the
host's float64 and this float32 arithmetic may round different ways.
"""

import jax
import jax.numpy as jnp


def _resample(pixels, axis: int, scale, side: int):
  """pixels [H,W,3] float32 resized along ``axis`` by ``scale`` onto ``side`` samples, rounded to 0..255."""
  shape = pixels.shape[:axis] + (side,) + pixels.shape[axis + 1:]
  out = jax.image.scale_and_translate(pixels, shape, (axis,), scale[None], jnp.zeros(1), "linear",
                                      antialias=True)
  return jnp.clip(jnp.floor(out + 0.5), 0, 255)


def resized_size(image_shape, min_size: int, max_size: int, rule: str = "pil"):
  """(h, w) float32 of an image of (symbolic) ``image_shape`` [H,W,...] after the resize, in float32
  arithmetic: ``int(x + 0.5)`` as the host's ``data.resize.resized_size`` (rule "pil"), or ``floor(x)``
  as ``torchvision_resized_size`` (rule "torchvision"; a scripted torchvision model's float32 too)."""
  size = jnp.array(image_shape[:2], jnp.float32)
  scale = jnp.minimum(min_size / size.min(), max_size / size.max())
  return jnp.maximum(jnp.floor(size * scale + (0.5 if rule == "pil" else 0.0)), 1)


def to_canvas(image, *, canvas: tuple[int, int], min_size: int, max_size: int) -> dict:
  """image [H,W,3] uint8 (H, W static or symbolic) -> image [Hc,Wc,3] uint8 on the (Hc, Wc) ``canvas``,
  image_size [2] int32 (h, w of the resized content, clipped to the canvas), as ``resize_and_pad``."""
  size = jnp.array(image.shape[:2], jnp.float32)
  resized = jnp.minimum(resized_size(image.shape, min_size, max_size), jnp.array(canvas, jnp.float32))
  pixels = image.astype(jnp.float32)
  for axis in (1, 0):
    pixels = _resample(pixels, axis, resized[axis] / size[axis], canvas[axis])
  inside = (jnp.arange(canvas[0])[:, None] < resized[0]) & (jnp.arange(canvas[1])[None, :] < resized[1])
  return {"image": jnp.where(inside[..., None], pixels, 0).astype(jnp.uint8),
          "image_size": resized.astype(jnp.int32)}
