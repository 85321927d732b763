"""Float32 tolerances derived from the computation compared, not from one machine's output.

Two CPUs (or two compiled programs) may add the terms of one sum in different orders: another vector
width (AVX2's 8 lanes, AVX-512's 16), another blocking of a convolution or matmul, fused multiply-adds
or not. Only a bound that holds for every order keeps a test true on every machine.
"""

import jax
import numpy as np
from flax import nnx

EPS = float(np.finfo(np.float32).eps)  # 2**-23; the unit roundoff u is EPS / 2


def reordered_sum_bound(abs_sum, terms: int):
  """How far apart two float32 evaluations of one sum of ``terms`` products may land, in any orders.

  Each is within gamma_n * sum|x_i| of the exact sum, gamma_n = n*u / (1 - n*u) (Higham, Accuracy and
  Stability of Numerical Algorithms, 2nd ed., eq. 3.5, dot products), so the two are within
  2 * gamma_n * sum|x_i|. ``abs_sum`` is sum|x_i| as computed in float32 (for a convolution: the same
  convolution of |x| with |w|), itself low by at most a factor (1 - gamma_n); dividing by (1 - n*EPS)
  covers both.
  """
  n_eps = terms * EPS
  return n_eps * np.asarray(abs_sum, np.float64) / (1 - n_eps)


def network_rtol(model) -> float:
  """Relative difference two float32 evaluations of ``model``'s outputs may show when their sums add in
  different orders, to first order: each layer's sums move by at most n*EPS of their sum|x_i|
  (``reordered_sum_bound``, n its fan-in), and no path through the network crosses more layers than
  the model has, so EPS times the fan-ins of all its kernels added up (6,027 for ``tiny``: 7.2e-4).
  First order means: for layers that keep the scale of their inputs (normalised, He-initialised), as
  the tested models' do. A change of behaviour moves losses and detections by far more.
  """
  kernels = [leaf for path, leaf in jax.tree.leaves_with_path(nnx.state(model, nnx.Param))
             if "kernel" in jax.tree_util.keystr(path)]
  return EPS * sum(int(np.prod(k.shape[:-1])) for k in kernels)
