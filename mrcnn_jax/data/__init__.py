"""Datasets (TFDS builders, prepared once with `python -m mrcnn_jax.data.prepare`) and the TF-free
grain input pipeline that turns them into static-shape batches (see pipeline.py and preprocess.py)."""

from mrcnn_jax.data.pipeline import class_info, eval_iterator, resolve_classes, train_iterator

__all__ = ["class_info", "eval_iterator", "resolve_classes", "train_iterator"]
