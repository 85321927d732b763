"""StableHLO through ``jax.export``: the serving function with the parameters baked in, one file.

Load and call it with JAX alone (no mrcnn_jax, no Flax):

    exported = jax.export.deserialize(open("model.stablehlo", "rb").read())
    out = exported.call(images)   # [B,H,W,3] uint8, B as exported, any H and W -> dict of arrays

The parameters are constants of the module rather than a second argument: the file is the whole model,
and a process without this package has no pytree of variables to rebuild and keep in order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mrcnn_jax.export.serving import serving_function


def export(model, batch: int, platforms=None) -> jax.export.Exported:
  """The model's serving function for image batches [batch, h, w, 3] uint8, h and w symbolic."""
  serve, params = serving_function(model)
  images = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"{batch}, h, w, 3"), jnp.uint8)
  return jax.export.export(jax.jit(functools.partial(serve, params)), platforms=platforms)(images)


def save(model, path: str, batch: int, platforms=None) -> None:
  """Writes ``export(model, batch, platforms)`` serialized to ``path``."""
  with open(path, "wb") as f:
    f.write(export(model, batch, platforms).serialize())
