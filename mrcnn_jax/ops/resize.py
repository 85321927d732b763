"""torchvision's detection resize, static-shaped: bilinear resampling (the size rule: ``data.resize``).

torchvision's GeneralizedRCNNTransform normalises the float image, then calls
`F.interpolate(mode="bilinear", align_corners=False, recompute_scale_factor=True)` with scale
min(min_size / short side, max_size / long side) (torchvision/models/detection/transform.py:61-72).
torch turns that scale into integer sizes, int(side * scale) in float64 (torch/nn/functional.py:5172),
then resamples with the ratio recomputed from those sizes, in float32 (torch 2.13's
include/ATen/native/UpSample.h:270 ratio, :300-314 source coordinate, :446-475 neighbours and weights).
"""

import jax.numpy as jnp


def _taps(in_len, out_len, n):
  """Neighbours and weights of n output positions along one axis: (i0, i1 [n] int32, w0, w1 [n] float32).

  torch's rule in float32: src = (in / out) * (d + 0.5) - 0.5 clamped at 0; i0 = min(floor(src), in - 1),
  i1 = min(i0 + 1, in - 1), w1 = clamp(src - i0, 0, 1). Equal sizes give w1 = 0 exactly (torch's copy).
  """
  in_len = jnp.asarray(in_len, jnp.int32)
  ratio = in_len.astype(jnp.float32) / jnp.asarray(out_len, jnp.int32).astype(jnp.float32)
  src = jnp.maximum(ratio * (jnp.arange(n, dtype=jnp.float32) + 0.5) - 0.5, 0.0)
  i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), in_len - 1)
  w1 = jnp.clip(src - i0.astype(jnp.float32), 0.0, 1.0)
  return i0, jnp.minimum(i0 + 1, in_len - 1), 1.0 - w1, w1


def resize_bilinear(image, in_size, out_size, out_shape):
  """Bilinear resize of image[:in_h, :in_w] to out_size (align_corners=False, no antialiasing), as torch.

  Args:
    image: [H, W, C] float32; the content is its top-left in_size block (the rest is never read).
    in_size: (in_h, in_w) ints, may be traced.
    out_size: (out_h, out_w) ints, may be traced; at most out_shape.
    out_shape: (Ho, Wo) static ints.
  Returns:
    [Ho, Wo, C] float32: the resized content at the top-left, zeros outside out_size. Interpolates along
    width first, then height, as torch's CPU kernel does. Under jit with XLA's default fusion (fused
    multiply-adds) the result equalled torch 2.13's (2 threads) bit for bit on the sizes tried; evaluated op
    by op, src can round one ulp differently. torch itself differs by a few ulps on 1 thread (another kernel).
  """
  image = jnp.asarray(image, jnp.float32)
  y0, y1, wy0, wy1 = _taps(in_size[0], out_size[0], out_shape[0])
  x0, x1, wx0, wx1 = _taps(in_size[1], out_size[1], out_shape[1])
  wx0, wx1 = wx0[None, :, None], wx1[None, :, None]
  top, bottom = image[y0], image[y1]
  top = top[:, x0] * wx0 + top[:, x1] * wx1
  bottom = bottom[:, x0] * wx0 + bottom[:, x1] * wx1
  out = top * wy0[:, None, None] + bottom * wy1[:, None, None]
  inside = ((jnp.arange(out_shape[0]) < out_size[0])[:, None]
            & (jnp.arange(out_shape[1]) < out_size[1])[None, :])
  return jnp.where(inside[:, :, None], out, 0.0)
