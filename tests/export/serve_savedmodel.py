"""``python serve_savedmodel.py SAVEDMODEL IN.npz OUT.npz``: calls the ``serving_default`` signature on IN's
"images" with TensorFlow and numpy alone (importing JAX, Flax or mrcnn_jax fails here) and saves its
outputs, the class names and the error messages for a float32 batch and a single HxWx3 image."""

import sys

for blocked in ("jax", "jaxlib", "flax", "mrcnn_jax"):
  sys.modules[blocked] = None  # an import of it now raises ImportError

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

model = tf.saved_model.load(sys.argv[1])
serve = model.signatures["serving_default"]
images = np.load(sys.argv[2])["images"]
out = {name: value.numpy() for name, value in serve(images=tf.constant(images)).items()}
errors = []
for bad in (images.astype(np.float32), images[0]):
  try:
    serve(images=tf.constant(bad))
    errors.append("no error")
  except tf.errors.InvalidArgumentError as e:
    errors.append(e.message)
names = [name.decode() for name in model.class_names.numpy()]
np.savez(sys.argv[3], class_names=np.array(names), errors=np.array(errors), **out)
