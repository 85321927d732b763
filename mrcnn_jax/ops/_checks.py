"""Trace-time argument checks shared by the ops: they look only at static shape and dtype."""

import jax.numpy as jnp
import numpy as np

_KINDS = {"float": jnp.floating, "int": jnp.integer, "bool": jnp.bool_}


def check_array(name, x, *, ndim=None, last_dim=None, kind=None):
  """Returns `x` as an array after checking rank, trailing size and dtype kind.

  Args:
    name: argument name used in the error message.
    x: array-like (a jax/numpy array, tracer or nested list).
    ndim: required rank, or None for any.
    last_dim: required size of the trailing axis, or None.
    kind: "float", "int", "bool" or None.
  Raises:
    ValueError naming `name` when a check fails.
  """
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    x = np.asarray(x)
  if ndim is not None and x.ndim != ndim:
    raise ValueError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}")
  if last_dim is not None and (x.ndim == 0 or x.shape[-1] != last_dim):
    raise ValueError(f"{name} must have a trailing axis of size {last_dim}, got shape {tuple(x.shape)}")
  if kind is not None and not jnp.issubdtype(x.dtype, _KINDS[kind]):
    raise ValueError(f"{name} must have a {kind} dtype, got {x.dtype}")
  return x


def check_same_leading(names, *arrays):
  """Raises ValueError unless all arrays share the size of their first axis."""
  sizes = [a.shape[0] for a in arrays]
  if len(set(sizes)) > 1:
    listing = ", ".join(f"{n}={s}" for n, s in zip(names, sizes))
    raise ValueError(f"leading sizes must agree: {listing}")
