"""RoI feature extraction from one feature map [H, W, C]: RoIAlign, RoIWarp and RoIPool.

The three poolers of the Mask R-CNN paper's Table 2c, with Detectron2 / torchvision semantics:

* RoIAlign (§3): the box is scaled by `spatial_scale` and, with `aligned=True`, shifted by -0.5 so
  that continuous coordinates line up with pixel centres. Each of the S x S bins is sampled on a
  regular g_h x g_w grid at (i + 0.5) * bin / g and the bilinear samples are averaged. A sample with
  y < -1 or y > H (likewise x) contributes 0; otherwise it is clamped into [0, H - 1].
  `aligned=False` is the original (torchvision) variant: no shift, RoI at least 1 x 1.
* RoIWarp (Dai et al., MNC): the box is quantized to whole cells exactly like RoIPool, then
  resampled bilinearly with the RoIAlign sampler (averaging, as RoIAlign).
* RoIPool (Fast R-CNN, Caffe / torchvision): the box is rounded to whole cells, each bin spans
  [floor(i * bin), ceil((i + 1) * bin)) cells, the bin's maximum is taken, and an empty bin gives 0.

The sampling grid: `sampling_ratio=k > 0` takes g = k samples per bin along each axis (the original
Detectron's fixed 2). `sampling_ratio=0` is Detectron2's default adaptive grid, per RoI and axis
g = ceil(roi_extent / S) (0 for an empty aligned RoI, whose output is 0), in static shapes: every
RoI is given G = `max_sampling_ratio` sample slots per bin and axis, slots j >= g weigh 0 and the
average divides by g. It equals Detectron2 for every RoI with g <= G on both axes; an RoI that needs
more is sampled like `sampling_ratio=G` along that axis (G evenly spread samples, not g). Its cost
is that of the fixed grid G. `max_sampling_ratio=0` picks G = ceil(max(H, W) / min(S)), exact for
every RoI inside the map (`poolers.exact_grid_bound` derives the much smaller FPN bound).
No gradient flows into the boxes (as in Detectron2, whose kernels return none).

The bilinear sampler works on a flat [N, C] buffer with per-RoI offsets and map extents, so the
same code serves one map, all FPN levels at once (`poolers.py`) and per-instance mask grids
(`masks.py`). RoIPool's max does the same over a static G x G window of cells per bin that covers
the widest bin (`pool_grid`); its gradient goes to each bin's argmax, as torchvision's.
"""

import functools

import jax
import jax.numpy as jnp

from mrcnn_jax.ops._checks import check_array


def check_output_size(output_size):
  """Returns output_size as a (height, width) pair of positive ints; ValueError otherwise."""
  pair = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
  if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
    raise ValueError(f"output_size must be a positive int or a pair of them, got {output_size!r}")
  return pair


def sampling_grid(sampling_ratio, max_sampling_ratio, exact_bound):
  """(grid, adaptive) for sample_regions from a pooler's sampling arguments; ValueError if bad.

  sampling_ratio > 0: that fixed grid. 0: Detectron2's adaptive grid capped at max_sampling_ratio,
  or at exact_bound (an int) when max_sampling_ratio is 0.
  """
  if not isinstance(sampling_ratio, int) or sampling_ratio < 0:
    raise ValueError("sampling_ratio must be a positive int, or 0 for Detectron2's adaptive "
                     f"ceil(roi_size / output_size) samples per bin, got {sampling_ratio!r}")
  if not isinstance(max_sampling_ratio, int) or max_sampling_ratio < 0:
    raise ValueError("max_sampling_ratio (the adaptive grid's static cap) must be a positive int, "
                     f"or 0 to derive it from the map size, got {max_sampling_ratio!r}")
  if sampling_ratio:
    return sampling_ratio, False
  return max_sampling_ratio or exact_bound, True


def _check_pool_args(features, boxes, output_size, spatial_scale):
  features = check_array("features", features, ndim=3, kind="float")
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  if not isinstance(spatial_scale, (int, float)) or spatial_scale <= 0:
    raise ValueError(f"spatial_scale must be a positive number, got {spatial_scale!r}")
  return features, boxes, check_output_size(output_size)


def _round_half_away(x):
  """C's round(): halves go away from zero (jnp.round goes to even)."""
  return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def _yx(boxes):
  """(x1, y1, x2, y2) [R, 4] -> top-left (y, x) [R, 2] and bottom-right (y, x) [R, 2]."""
  return boxes[:, 1::-1], boxes[:, 3:1:-1]


def quantize_boxes(boxes, spatial_scale):
  """RoIPool's quantisation: first and last covered cell (y, x) [R, 2] each, as float integers.

  spatial_scale is a scalar or an [R] array.
  """
  scaled = _round_half_away(boxes * jnp.reshape(spatial_scale, (-1, 1)))
  return _yx(scaled)


def roi_regions(boxes, spatial_scale, method, aligned=True):
  """Sampling region of each RoI in cell-index coordinates (cell i has its centre at i).

  Args:
    boxes: [R, 4] (x1, y1, x2, y2) canvas pixels.
    spatial_scale: scalar or [R] array, map cells per canvas pixel.
    method: "roi_align" or "roi_warp".
    aligned: RoIAlign's half-pixel shift (ignored by "roi_warp", which works on whole cells).
  Returns:
    start (y, x) [R, 2] and size (h, w) [R, 2], float32, no gradient.
  """
  boxes = jax.lax.stop_gradient(boxes.astype(jnp.float32))
  if method == "roi_warp":
    first, last = quantize_boxes(boxes, spatial_scale)
    return first - 0.5, jnp.maximum(last - first + 1.0, 1.0)
  if method != "roi_align":
    raise ValueError(f"method must be 'roi_align' or 'roi_warp', got {method!r}")
  lo, hi = _yx(boxes * jnp.reshape(spatial_scale, (-1, 1)))
  if aligned:
    return lo - 0.5, hi - lo
  return lo, jnp.maximum(hi - lo, 1.0)


def axis_taps(start, size, bins, grid, length, adaptive=False):
  """Bilinear taps along one axis for `bins` bins of g samples each (Detectron2's rules).

  Args:
    start, size: [R] region start and extent in cell-index coordinates.
    bins, grid: static ints; sample j of bin b sits at start + (b + (j + 0.5) / g) * size / bins.
    length: [R] or scalar number of cells along this axis.
    adaptive: False: g = grid. True (Detectron2's sampling_ratio=0): g = clip(ceil(size / bins), 0,
      grid) per RoI, and the grid - g slots past it weigh 0.
  Returns:
    idx [R, bins * grid, 2] int32 (low, high neighbour) and weight [R, bins * grid, 2] float32.
    Weights include validity (0 for samples beyond [-1, length]) and the 1 / g of the average.
  """
  bin_size = (size / bins)[:, None]
  b = jnp.repeat(jnp.arange(bins, dtype=jnp.float32), grid)
  j = jnp.tile(jnp.arange(grid, dtype=jnp.float32), bins)
  count = grid
  if adaptive:
    used = jnp.clip(jnp.ceil(jnp.nan_to_num(bin_size)), 0.0, grid)  # [R, 1]; 0 for an empty RoI
    count = jnp.maximum(used, 1.0)
  pos = start[:, None] + b * bin_size + (j + 0.5) * bin_size / count
  length = jnp.broadcast_to(jnp.asarray(length, jnp.float32).reshape(-1, 1), pos.shape)
  valid = (pos >= -1.0) & (pos <= length)  # False for NaN too
  if adaptive:
    valid = valid & (j < used)
  pos = jnp.clip(jnp.where(valid, pos, 0.0), 0.0, length - 1.0)
  low = jnp.floor(pos)
  high = jnp.minimum(low + 1.0, length - 1.0)
  frac = pos - low
  scale = valid.astype(jnp.float32) / count
  idx = jnp.stack([low, high], axis=-1).astype(jnp.int32)
  return idx, jnp.stack([(1.0 - frac) * scale, frac * scale], axis=-1)


def _tap(ys, wy, xs, wx, a, b):
  """Flat index and weight [R, Sh, Sw] of tap (a, b) of every bin (a, b may be traced); with
  boolean weights, whether the tap is in the bin."""
  def take(v, i):
    return jax.lax.dynamic_index_in_dim(v, i, 2, keepdims=False)

  idx = take(ys, a)[:, :, None] + take(xs, b)[:, None, :]
  return idx, take(wy, a)[:, :, None] * take(wx, b)[:, None, :]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _weighted_gather(layout, flat, ys, wy, xs, wx):
  """Sum over taps (a, b) of flat[ys[..., a] + xs[..., b]] * wy[..., a] * wx[..., b].

  Row taps ys, wy [R, Sh, T] (ys already times the map width, plus the offsets), column taps xs,
  wx [R, Sw, T]; layout = (rows, dtype) of flat. Returns [R, Sh, Sw, C] float32.

  Forward: one gather per tap, which XLA fuses with the weighted sum into a single pass writing
  only the output (one [..., T * T, C] gather would materialise T * T times the output). Backward:
  its transpose, one scatter-add per tap inside a fori_loop, so a single [R, Sh, Sw, C] update is
  alive at a time (autodiff of the forward builds all T * T updates and gradient buffers).
  """
  del layout
  out = 0.0
  for a in range(ys.shape[-1]):
    for b in range(xs.shape[-1]):
      idx, w = _tap(ys, wy, xs, wx, a, b)
      out = out + flat.at[idx].get(mode="promise_in_bounds").astype(jnp.float32) * w[..., None]
  return out


def _weighted_gather_fwd(layout, flat, ys, wy, xs, wx):
  return _weighted_gather(layout, flat, ys, wy, xs, wx), (ys, wy, xs, wx)


def _weighted_gather_bwd(layout, residuals, grad):
  ys, wy, xs, wx = residuals
  rows, dtype = layout
  taps = xs.shape[-1]

  def add_tap(k, acc):
    idx, w = _tap(ys, wy, xs, wx, k // taps, k % taps)
    return acc.at[idx].add(grad * w[..., None], mode="promise_in_bounds")

  init = jnp.zeros((rows, grad.shape[-1]), jnp.float32)
  acc = jax.lax.fori_loop(0, ys.shape[-1] * taps, add_tap, init)
  return acc.astype(dtype), None, None, None, None


_weighted_gather.defvjp(_weighted_gather_fwd, _weighted_gather_bwd)


def sample_regions(flat, offsets, extents, start, size, output_size, grid, adaptive=False):
  """The one bilinear sampler: averages g_h x g_w bilinear samples per bin of each region.

  Args:
    flat: [N, C] buffer holding one or more row-major maps.
    offsets: [R] int, row of `flat` where each RoI's map starts.
    extents: [R, 2] int, (height, width) of each RoI's map.
    start, size: [R, 2] (y, x) region in that map's cell-index coordinates (see roi_regions).
    output_size: static (Sh, Sw); grid: static int samples per bin along each axis, or with
      `adaptive` the cap G of Detectron2's per-RoI ceil(size / S) (see axis_taps).
  Returns:
    [R, Sh, Sw, C] in flat's dtype (accumulated in float32), differentiable w.r.t. flat (reverse
    mode only). Cost: R * Sh * Sw * (2 * grid)^2 gathered rows of C, O(R * Sh * Sw * C) memory.
  """
  sh, sw = output_size
  r, taps = start.shape[0], 2 * grid
  ys, wy = axis_taps(start[:, 0], size[:, 0], sh, grid, extents[:, 0], adaptive)
  xs, wx = axis_taps(start[:, 1], size[:, 1], sw, grid, extents[:, 1], adaptive)
  ys = ys * extents[:, 1:2, None].astype(jnp.int32) + offsets.astype(jnp.int32)[:, None, None]
  pooled = _weighted_gather((flat.shape[0], flat.dtype), flat,
                            ys.reshape(r, sh, taps), wy.reshape(r, sh, taps),
                            xs.reshape(r, sw, taps), wx.reshape(r, sw, taps))
  return pooled.astype(flat.dtype)


def _single_map_pool(method, features, boxes, output_size, spatial_scale, sampling_ratio, aligned,
                     max_sampling_ratio):
  features, boxes, out = _check_pool_args(features, boxes, output_size, spatial_scale)
  h, w, c = features.shape
  # Exact for any RoI inside the map (RoIWarp's rounded RoI may span one cell more).
  exact = -(-(max(h, w) + (method == "roi_warp")) // min(out))
  grid, adaptive = sampling_grid(sampling_ratio, max_sampling_ratio, exact)
  r = boxes.shape[0]
  start, size = roi_regions(boxes, spatial_scale, method, aligned)
  return sample_regions(features.reshape(h * w, c), jnp.zeros((r,), jnp.int32),
                        jnp.broadcast_to(jnp.array([h, w], jnp.int32), (r, 2)), start, size, out,
                        grid, adaptive)


_POOL_STATICS = ("output_size", "spatial_scale", "sampling_ratio", "aligned", "max_sampling_ratio")


@functools.partial(jax.jit, static_argnames=_POOL_STATICS)
def roi_align(features, boxes, output_size, spatial_scale, sampling_ratio=2, aligned=True,
              max_sampling_ratio=0):
  """RoIAlign (Mask R-CNN §3, Detectron2 semantics; see the module docstring).

  Args:
    features: [H, W, C] float map. boxes: [R, 4] (x1, y1, x2, y2) canvas pixels.
    output_size: S or (Sh, Sw). spatial_scale: map cells per canvas pixel (1 / stride).
    sampling_ratio: samples per bin along each axis; 0: Detectron2's adaptive ceil(roi / S).
    aligned: the half-pixel shift (True, Detectron2) or not (False, original RoIAlign).
    max_sampling_ratio: sampling_ratio=0 only: the static cap G on the adaptive count; 0: exact
      for every RoI inside the map.
  Returns:
    [R, Sh, Sw, C], differentiable w.r.t. features.
  """
  return _single_map_pool("roi_align", features, boxes, output_size, spatial_scale, sampling_ratio,
                          aligned, max_sampling_ratio)


@functools.partial(jax.jit, static_argnames=_POOL_STATICS)
def roi_warp(features, boxes, output_size, spatial_scale, sampling_ratio=2, aligned=True,
             max_sampling_ratio=0):
  """RoIWarp: the box is quantized like RoIPool, then resampled as RoIAlign (sampling arguments as
  roi_align). `aligned` is unused (kept for a signature common to the three poolers).
  Returns [R, Sh, Sw, C]."""
  del aligned
  return _single_map_pool("roi_warp", features, boxes, output_size, spatial_scale, sampling_ratio,
                          True, max_sampling_ratio)


def _bin_cells(first, last, bins, grid, length):
  """RoIPool bins along one axis: each bin's first `grid` cells [R, bins, grid] int32 (clipped into
  the map) and whether each is in the bin [R, bins, grid] bool, from first / last cells [R].

  Bin b spans [floor(b * n / bins), ceil((b + 1) * n / bins)) + first for an n-cell RoI, clipped to
  [0, length), computed exactly in integers. In float32 the bounds can overshoot by a cell: XLA may
  turn / bins into * (1 / bins) (ceil(21 * float32(1 / 7)) = 4), and torchvision's kernel, which
  multiplies the float32 bin size, gets ceil(7 * float32(57 / 7)) = 58; it differs from us in such
  rare bins.
  """
  limit = 1 << 20  # keeps absurd (or NaN) boxes finite before the integer cast
  first = jnp.clip(jnp.nan_to_num(first), -limit, limit).astype(jnp.int32)[:, None]
  last = jnp.clip(jnp.nan_to_num(last), -limit, limit).astype(jnp.int32)[:, None]
  length = jnp.asarray(length, jnp.int32).reshape(-1, 1)
  extent = jnp.maximum(last - first + 1, 1)
  b = jnp.arange(bins, dtype=jnp.int32)
  lo = jnp.clip(b * extent // bins + first, 0, length)
  hi = jnp.clip(-(-(b + 1) * extent // bins) + first, 0, length)
  cells = lo[..., None] + jnp.arange(grid, dtype=jnp.int32)
  return jnp.minimum(cells, length[..., None] - 1), cells < hi[..., None]


def pool_grid(cells, output_size):
  """The widest RoIPool bin, in cells, of any RoI spanning at most `cells` map cells plus the two
  that rounding its ends can add: ceil((cells + 2) / S) + 1 (a bin straddles one cell more than
  its share), and never more than the map's `cells`."""
  return max(1, min(cells, -(-(cells + 2) // min(output_size)) + 1))


def max_pool_regions(flat, offsets, extents, first, last, output_size, grid):
  """RoIPool's max over each bin of quantized regions of a flat [N, C] buffer; 0 for an empty bin.

  Args:
    flat, offsets, extents: as sample_regions.
    first, last: [R, 2] first and last covered cell (y, x) of each RoI (quantize_boxes).
    output_size: static (Sh, Sw). grid: static G, at least the widest bin in cells (pool_grid);
      a wider bin is maxed over its first G x G cells.
  Returns:
    [R, Sh, Sw, C] in flat's dtype, differentiable w.r.t. flat: each output's gradient goes to its
    bin's first maximum in row-major order (torchvision's argmax). Cost: R * Sh * Sw * G^2 gathered
    rows of C, in a loop over the G^2 cells of a bin (one [R, Sh, Sw, C] gather alive at a time).
  """
  sh, sw = output_size
  rows, row_in = _bin_cells(first[:, 0], last[:, 0], sh, grid, extents[:, 0])
  cols, col_in = _bin_cells(first[:, 1], last[:, 1], sw, grid, extents[:, 1])
  rows = rows * extents[:, 1:2, None].astype(jnp.int32) + offsets.astype(jnp.int32)[:, None, None]
  values = jax.lax.stop_gradient(flat)

  def visit(k, carry):
    best, arg = carry
    idx, inside = _tap(rows, row_in, cols, col_in, k // grid, k % grid)     # [R, Sh, Sw] each
    value = values.at[idx].get(mode="promise_in_bounds")                     # [R, Sh, Sw, C]
    better = inside[..., None] & ((value > best) | (arg < 0))
    return jnp.where(better, value, best), jnp.where(better, idx[..., None], arg)

  shape = (first.shape[0], sh, sw, flat.shape[-1])
  init = (jnp.full(shape, -jnp.inf, flat.dtype), jnp.full(shape, -1, jnp.int32))
  _, arg = jax.lax.fori_loop(0, grid * grid, visit, init)
  pooled = flat.at[jnp.maximum(arg, 0), jnp.arange(shape[-1])].get(mode="promise_in_bounds")
  return jnp.where(arg >= 0, pooled, jnp.zeros((), flat.dtype))


@functools.partial(jax.jit, static_argnames=_POOL_STATICS)
def roi_pool(features, boxes, output_size, spatial_scale, sampling_ratio=2, aligned=True,
             max_sampling_ratio=0):
  """RoIPool (Caffe / torchvision): max over quantized bins, 0 for empty bins.

  `sampling_ratio`, `aligned` and `max_sampling_ratio` are unused (signature shared with
  roi_align). Exact for every RoI no larger than the map, wherever it lies (a larger one has bins
  wider than max_pool_regions' static G = pool_grid(max(H, W)): those are maxed over their first G
  cells). Returns [R, Sh, Sw, C].
  """
  del sampling_ratio, aligned, max_sampling_ratio
  features, boxes, out = _check_pool_args(features, boxes, output_size, spatial_scale)
  h, w, c = features.shape
  r = boxes.shape[0]
  first, last = quantize_boxes(jax.lax.stop_gradient(boxes.astype(jnp.float32)), spatial_scale)
  return max_pool_regions(features.reshape(h * w, c), jnp.zeros((r,), jnp.int32),
                          jnp.broadcast_to(jnp.array([h, w], jnp.int32), (r, 2)), first, last, out,
                          pool_grid(max(h, w), out))
