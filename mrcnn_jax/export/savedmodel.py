"""TensorFlow SavedModel through ``jax2tf`` (native serialization): a ``serving_default`` signature.

Load and call it with TensorFlow alone (no JAX, no mrcnn_jax):

    model = tf.saved_model.load("savedmodel")
    out = model.signatures["serving_default"](images=images)   # [B,H,W,3] uint8 -> dict of tensors
    names = model.class_names.numpy()                            # [K] bytes: classes index them from 1

The module inside is the StableHLO of ``serving.serving_function`` (an ``XlaCallModule`` op), with the
parameters as TF variables passed to it (``variables/``, TF's usual place for weights, which also keeps
the graph far from the 2 GB limit of a GraphDef). TensorFlow is imported here only.

The module is serialized for StableHLO consumers up to 12 weeks older than JAX, not JAX's default 4:
TensorFlow 2.21's XlaCallModule reads StableHLO 1.13.7, and JAX 0.10.2's 4-week target (1.15.0) writes
``stablehlo.composite`` (our ``lax.top_k``) in a form it cannot read ("unregistered operation
'vhlo.composite_v2'").
"""

from __future__ import annotations

import contextlib
from unittest import mock

from mrcnn_jax.export.serving import serving_function


@contextlib.contextmanager
def _stablehlo_for_older_consumers():
  """While active, ``jax.export`` serializes for the 12-week compatibility window (see the docstring)."""
  from jax._src.lib.mlir.dialects import hlo  # pylint: disable=import-outside-toplevel
  target = hlo.get_version_from_compatibility_requirement(hlo.StablehloCompatibilityRequirement.WEEK_12)
  with mock.patch.object(hlo, "get_version_from_compatibility_requirement", lambda _: target):
    yield


def save(model, path: str, batch: int, platforms=None) -> None:
  """Writes the SavedModel of ``model`` for image batches [batch, h, w, 3] uint8 to ``path``."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from jax.experimental import jax2tf  # pylint: disable=import-outside-toplevel

  serve, params = serving_function(model)
  module = tf.Module()
  module.params = [tf.Variable(p, trainable=False) for p in params]
  module.class_names = tf.Variable(list(model.config.class_names), trainable=False, dtype=tf.string)
  serve_tf = jax2tf.convert(serve, polymorphic_shapes=[None, f"({batch}, h, w, 3)"], with_gradient=False,
                            native_serialization_platforms=platforms)

  @tf.function(autograph=False,
               input_signature=[tf.TensorSpec([batch, None, None, 3], tf.uint8, name="images")])
  def serving_default(images):
    # The signature checks the dtype only; without this a wrong shape fails deep inside XlaCallModule.
    return serve_tf(module.params, tf.ensure_shape(images, [batch, None, None, 3], name="images"))

  module.serving_default = serving_default
  with _stablehlo_for_older_consumers():
    tf.saved_model.save(module, path, signatures={"serving_default": serving_default})
