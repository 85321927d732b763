"""TFDS builder `mrcnn_shapes`: the synthetic scenes of shapes.py in the format of features.py.

Deterministic: example i of a split is drawn from np.random.default_rng([seed, split, i]), so the same
config gives the same bytes on any machine and in any generation order. Image ids are i + 1.
The registered config "default" is seed 0, 2000 train / 200 validation images of 128 px; other
parameters get their own config name (see `named_config`), hence their own directory.
`SceneBuilder` is that machinery for any synthetic scene renderer (figures_builder.py is the other).
"""

import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from mrcnn_jax.data import features, shapes

_SPLITS = {"train": 0, "validation": 1}


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
  seed: int = 0
  num_train: int = 2000
  num_val: int = 200
  image_size: int = 128
  max_shapes: int = 6


DEFAULT = ShapesConfig(name="default", description="seed 0, 2000/200 images of 128x128.")


def named_config(default: ShapesConfig, seed: int, num_train: int, num_val: int,
                 image_size: int) -> ShapesConfig:
  """``default`` when the parameters match it, else a copy named after the parameters."""
  params = dict(seed=seed, num_train=num_train, num_val=num_val, image_size=image_size)
  if all(getattr(default, k) == v for k, v in params.items()):
    return default
  name = f"seed{seed}_train{num_train}_val{num_val}_px{image_size}"
  return dataclasses.replace(default, name=name, description=f"{params}", **params)


def shapes_config(seed: int = 0, num_train: int = 2000, num_val: int = 200,
                  image_size: int = 128) -> ShapesConfig:
  return named_config(DEFAULT, seed, num_train, num_val, image_size)


class SceneBuilder(features.LocalBuilder, tfds.core.GeneratorBasedBuilder):
  """A builder of synthetic scenes: subclasses set VERSION, BUILDER_CONFIGS, code_path and define
  `_info` and `_render(rng) -> (image, masks [N,H,W] bool, labels [N], extra objects dict, dropped)`."""

  def __init__(self, **kwargs):
    self.stats = {}  # split -> counts, filled while generating (printed by `prepare`)
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    return {"train": self._generate_examples("train", cfg.num_train),
            "validation": self._generate_examples("validation", cfg.num_val)}

  def _generate_examples(self, split: str, num_examples: int):
    cfg = self.builder_config
    size = cfg.image_size
    for index in range(num_examples):
      rng = np.random.default_rng([cfg.seed, _SPLITS[split], index])
      image, masks, labels, extra, dropped = self._render(rng)
      stats = self.stats.setdefault(split, {"images": 0, "instances": 0, "dropped_hidden_or_tiny": 0})
      stats["images"] += 1
      stats["instances"] += len(masks)
      stats["dropped_hidden_or_tiny"] += dropped
      yield index, {
          "image": features.encode_png(image),
          "image/id": index + 1,
          "objects": {
              "bbox": [features.normalized_bbox(shapes.mask_box(m), size, size) for m in masks],
              "label": labels,
              "is_crowd": np.zeros(len(masks), bool),
              "area": masks.sum(axis=(1, 2)).astype(np.float32),
              "mask": [features.encode_mask(m) for m in masks],
              **extra,
          },
      }


class MrcnnShapes(SceneBuilder):
  """Circles, squares, triangles and thin bars with occlusion on textured backgrounds."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [DEFAULT]
  # Where TFDS looks for checksums; without it TFDS 4.9.10 needs the `importlib_resources` package.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features.instance_features(shapes.CLASS_NAMES),
        metadata=tfds.core.MetadataDict(category_ids=list(range(1, len(shapes.CLASS_NAMES) + 1))),
    )

  def _render(self, rng):
    cfg = self.builder_config
    image, masks, labels, dropped = shapes.render_scene(rng, cfg.image_size, max_shapes=cfg.max_shapes)
    return image, masks, labels, {}, dropped
