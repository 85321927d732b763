"""Export of a model that runs on natural-size canvases (``size_divisibility``, zeros after normalising,
as converted models do): the graph picks the landscape or the portrait canvas for the input's shape and
resizes as ``predict`` does (PIL's rule, or torchvision's on the float image), so its detections are
``predict``'s. Tiny model, min_size 32 / max_size 64: canvases 32x64 and 64x32."""

import jax
import numpy as np
import pytest

import mrcnn_jax
from export_checks import same_detections
from mrcnn_jax import configs
from mrcnn_jax.export import stablehlo


@pytest.mark.parametrize("resize", ["pil", "torchvision"])
def test_landscape_and_portrait_inputs_give_predicts_detections(make_config, resize):
  config = configs.override(make_config(padding="normalized"), {
      "data.size_divisibility": 32, "data.min_size": 32, "data.max_size": 64, "data.resize": resize})
  model = mrcnn_jax.build_model(config)
  exported = stablehlo.export(model, batch=1)
  rng = np.random.default_rng(0)
  for shape in ((32, 48), (48, 32)):  # already at their resized size: the same pixels on both paths
    images = rng.integers(0, 255, (1, *shape, 3)).astype(np.uint8)
    expected = mrcnn_jax.predict(model, images)
    assert int(expected.num_detections.min()) > 0
    same_detections(jax.device_get(exported.call(images)), expected)
