"""TFDS builder `mrcnn_figures`: the stick-figure keypoint scenes of figures.py in features.py's
format, keypoints included, with the keypoint metadata of keypoints.py (names, skeleton, flip map,
OKS sigmas). Deterministic by seed as shapes_builder.py; the registered config "default" is seed 0,
2000 train / 200 validation images of 128 px.

  python -m mrcnn_jax.data.prepare keypoints --data_dir data
"""

from etils import epath
import tensorflow_datasets as tfds

from mrcnn_jax.data import features, figures, keypoints, shapes_builder

DEFAULT = shapes_builder.ShapesConfig(name="default", description="seed 0, 2000/200 images of 128x128.",
                                      max_shapes=4)


def figures_config(seed: int = 0, num_train: int = 2000, num_val: int = 200,
                   image_size: int = 128) -> shapes_builder.ShapesConfig:
  return shapes_builder.named_config(DEFAULT, seed, num_train, num_val, image_size)


class MrcnnFigures(shapes_builder.SceneBuilder):
  """Articulated stick figures with 11 keypoints, occluding each other, on textured backgrounds."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [DEFAULT]
  code_path = epath.Path(__file__)  # as shapes_builder's

  def _info(self) -> tfds.core.DatasetInfo:
    metadata = keypoints.dataset_metadata(figures.KEYPOINT_NAMES, figures.SKELETON, figures.SIGMAS)
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features.instance_features(figures.CLASS_NAMES, len(figures.KEYPOINT_NAMES)),
        metadata=tfds.core.MetadataDict(category_ids=[1], **metadata),
    )

  def _render(self, rng):
    cfg = self.builder_config
    image, masks, kps, dropped = figures.render_scene(rng, cfg.image_size, max_figures=cfg.max_shapes)
    return image, masks, [0] * len(masks), {"keypoints": kps}, dropped
