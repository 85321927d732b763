"""Training: mesh and shardings, optimizer, train step, checkpoints, loop; ``python -m mrcnn_jax.train``."""
