"""Python config files: ``base`` and presets that import and override it.

``get(name)`` returns the ``ml_collections.ConfigDict`` of preset ``name`` (e.g. "shapes_tiny").
"""

import importlib

import ml_collections


def get(name: str) -> ml_collections.ConfigDict:
  try:
    module = importlib.import_module(f"mrcnn_jax.configs.{name}")
  except ModuleNotFoundError as e:
    raise ValueError(f"unknown config {name!r}") from e
  return module.get_config()
