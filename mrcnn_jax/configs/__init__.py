"""Python config files: ``base`` and presets that import and override it.

``get(name)`` returns the ``ml_collections.ConfigDict`` of preset ``name`` (e.g. "shapes_tiny");
``override(config, {"model.width": 8, ...})`` sets dotted fields, refusing unknown ones. Every
override in the project (command lines, sweeps, tests, saved workdir configs) goes through it.
"""

import ast
import difflib
import importlib

import ml_collections

from mrcnn_jax.errors import UserError


def get(name: str) -> ml_collections.ConfigDict:
  try:
    module = importlib.import_module(f"mrcnn_jax.configs.{name}")
  except ModuleNotFoundError as e:
    raise UserError(f"unknown config {name!r}") from e
  return module.get_config()


def parse_value(text: str):
  """A command-line value: a Python literal (3, 0.5, (16, 32), True) or else the string itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_overrides(args: list[str]) -> dict:
  """``["--config.data.canvas=512", ...]`` -> ``{"data.canvas": 512}``; UserError for anything else."""
  overrides = {}
  for item in args:
    key, sep, value = item.partition("=")
    if not (key.startswith("--config.") and sep):
      raise UserError(f"unrecognized argument {item!r} (overrides look like --config.data.canvas=512)")
    overrides[key[len("--config."):]] = parse_value(value)
  return overrides


def _fields(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  out = []
  for key, value in config.items():
    out += _fields(value, f"{prefix}{key}.") if isinstance(value, ml_collections.ConfigDict) else [prefix + key]
  return out


def override(config: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  """Sets each dotted key of ``overrides`` in ``config`` (in place; lists become tuples); returns it.

  Raises UserError (a ValueError) naming an unknown field (with the closest known one) or a value of
  the wrong type.
  """
  for key, value in overrides.items():
    *path, leaf = key.split(".")
    node = config
    for name in path:
      node = node.get(name) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      close = difflib.get_close_matches(key, _fields(config), n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise UserError(f"unknown config field {key!r}{hint}")
    try:
      node[leaf] = tuple(value) if isinstance(value, list) else value
    except TypeError as e:
      raise UserError(f"config field {key!r}: {e}") from e
  return config
