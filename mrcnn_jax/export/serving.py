"""The function every export format serializes: a uint8 image batch of any size in, detections out.

``serving_function(model) -> (serve, params)``; ``serve(params, images)`` is ``mrcnn_jax.predict`` for
one batch of same-size images as a single traceable function: resize and pad onto the canvas
(``canvas.to_canvas``), ``MaskRCNN.detect`` at predict's default thresholds, then boxes and masks back
in the input's pixels, as ``postprocess.to_original``. ``params`` is the flat list of the model's
variables (``jax.tree.leaves`` of its ``nnx.State``), so formats can bake it in or pass it as an argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mrcnn_jax import ops
from mrcnn_jax.export.canvas import to_canvas
from mrcnn_jax.inference import SCORE_THRESHOLD
from mrcnn_jax.model.mask_rcnn import MaskRCNN

def serving_function(model: MaskRCNN):
  """-> (serve, params). serve(params, images [B,H,W,3] uint8) -> {boxes [B,D,4] float32 (x1, y1, x2, y2
  in input pixels), scores [B,D] float32, classes [B,D] int32 (1..K, 0 = padding), num_detections [B]
  int32, masks [B,D,H,W] bool (input pixels)}; rows past num_detections are zeros. H, W may be symbolic."""
  graphdef, state = nnx.split(model)
  params, treedef = jax.tree.flatten(state)
  config = model.config
  data, border = config.data, config.model.mask.paste_border

  def serve(params, images):
    _, height, width, _ = images.shape
    canvas = jax.vmap(lambda image: to_canvas(image, canvas=data.canvas, min_size=data.min_size,
                                              max_size=data.max_size))(images)
    det = nnx.merge(graphdef, jax.tree.unflatten(treedef, params)).detect(
        canvas["image"], canvas["image_size"], SCORE_THRESHOLD, config.model.roi.nms_threshold)
    valid = det["valid"]
    limit = jnp.array([width, height, width, height], jnp.float32)
    boxes = jnp.clip(det["boxes"] / canvas["scale"][:, None, None], 0, limit)
    masks = jax.lax.map(lambda mb: ops.paste_masks(*mb, height=height, width=width, border=border),
                        (det["masks"].astype(jnp.float32), boxes))  # one image at a time: [D,H,W] floats
    return {"boxes": jnp.where(valid[..., None], boxes, 0.0), "scores": jnp.where(valid, det["scores"], 0.0),
            "classes": jnp.where(valid, det["classes"], 0).astype(jnp.int32),
            "num_detections": valid.sum(1).astype(jnp.int32), "masks": masks & valid[..., None, None]}
  return serve, params
