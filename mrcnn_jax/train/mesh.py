"""Device mesh and shardings for data-parallel training across all devices of all processes.

The mesh has one axis, ``data``, over ``jax.devices()`` (every device of every process). A global
batch of B images is split along its leading dimension over that axis; parameters are replicated.
Each process loads only its own slice of the batch (``B / jax.process_count()`` images) and
:func:`global_batch` stitches the per-process slices into one global ``jax.Array``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  # Auto axes: XLA propagates shardings through the model, which needs no sharding annotations.
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (parameters, optimizer state, step, rng)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) dimension over the ``data`` axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles this process's batch slice ``{name: [B_local, ...]}`` into global arrays ``[B, ...]``.

  Every process calls this with its own slice, in process order; ``B = B_local * process_count``
  must be divisible by the number of devices in ``mesh``. 64-bit integers (``image_id``) become
  int32 because JAX runs without x64.
  """
  sharding = batch_sharded(mesh)
  per_process = mesh.devices.size // jax.process_count()
  out = {}
  for name, value in local.items():
    value = np.asarray(value)
    if value.ndim == 0:
      raise ValueError(f"batch[{name!r}] must have a leading batch dimension, got a scalar")
    if value.shape[0] % per_process:
      raise ValueError(f"batch[{name!r}] has {value.shape[0]} examples on this process, not divisible "
                       f"by its {per_process} devices")
    if value.dtype == np.int64:
      value = value.astype(np.int32)
    out[name] = jax.make_array_from_process_local_data(sharding, value)
  return out


def local_copy(tree):
  """A single-device copy of a replicated pytree (to run host-local code such as evaluation)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)
