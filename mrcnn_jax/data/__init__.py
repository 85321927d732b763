"""Datasets (TFDS builders, prepared once with `python -m mrcnn_jax.data.prepare`), the TF-free grain
input pipeline (`pipeline.py`) that turns them into static-shape batches, and the batch's definition
(`batch_spec.py`). Importing this package loads nothing heavy: import the submodule you need."""
