"""The function every export format serializes: a uint8 image batch of any size in, detections out.

``serving_function(model) -> (serve, params)``; ``serve(params, images)`` is ``mrcnn_jax.predict`` for
one batch of same-size images as a single traceable function: resize and pad onto the smallest of
``data.canvas.export_canvases`` that holds the resized image (``canvas.to_canvas``; one branch of a
``lax.switch`` per canvas: a landscape and a portrait one for a converted model), ``MaskRCNN.detect``
at predict's default thresholds, then boxes and masks back in the input's pixels, as
``postprocess.to_original``. ``params`` is the flat list of the model's
variables (``jax.tree.leaves`` of its ``nnx.State``), so formats can bake it in or pass it as an argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mrcnn_jax import ops
from mrcnn_jax.data import canvas as canvas_lib
from mrcnn_jax.export.canvas import resized_size, to_canvas
from mrcnn_jax.inference import SCORE_THRESHOLD, detect_resized
from mrcnn_jax.model.mask_rcnn import MaskRCNN


def serving_function(model: MaskRCNN):
  """-> (serve, params). serve(params, images [B,H,W,3] uint8) -> {boxes [B,D,4] float32 (x1, y1, x2, y2
  in input pixels), scores [B,D] float32, classes [B,D] int32 (1..K, 0 = padding), num_detections [B]
  int32, masks [B,D,H,W] bool (input pixels)}; rows past num_detections are zeros. H, W may be symbolic."""
  graphdef, state = nnx.split(model)
  params, treedef = jax.tree.flatten(state)
  config = model.config
  data, border = config.data, config.model.mask.paste_border

  shapes = canvas_lib.export_canvases(data)

  def on_canvas(shape, model, resized):
    def run(images):
      if data.resize == "torchvision":  # resize the normalised float image, as predict does
        batch = images.shape[0]
        size = jnp.broadcast_to(jnp.minimum(resized, jnp.array(shape)).astype(jnp.int32), (batch, 2))
        source_size = jnp.broadcast_to(jnp.array(images.shape[1:3]), (batch, 2))
        return detect_resized(model, images, source_size, size, shape, SCORE_THRESHOLD,
                              config.model.roi.nms_threshold), size
      canvas = jax.vmap(lambda image: to_canvas(image, canvas=shape, min_size=data.min_size,
                                                max_size=data.max_size))(images)
      det = model.detect(canvas["image"], canvas["image_size"], SCORE_THRESHOLD, config.model.roi.nms_threshold)
      return det, canvas["image_size"]
    return run

  def serve(params, images):
    _, height, width, _ = images.shape
    model = nnx.merge(graphdef, jax.tree.unflatten(treedef, params))
    resized = resized_size(images.shape[1:], data.min_size, data.max_size, data.resize)
    holds = jnp.array([(resized[0] <= h) & (resized[1] <= w) for h, w in shapes])
    det, image_size = jax.lax.switch(jnp.argmax(holds), [on_canvas(shape, model, resized) for shape in shapes],
                                     images)
    scale = jnp.stack([width / image_size[:, 1], height / image_size[:, 0]], -1).astype(jnp.float32)
    valid = det["valid"]
    limit = jnp.array([width, height, width, height], jnp.float32)
    boxes = jnp.clip(det["boxes"] * jnp.tile(scale, 2)[:, None], 0, limit)
    masks = jax.lax.map(lambda mb: ops.paste_masks(*mb, height=height, width=width, border=border),
                        (det["masks"].astype(jnp.float32), boxes))  # one image at a time: [D,H,W] floats
    return {"boxes": jnp.where(valid[..., None], boxes, 0.0), "scores": jnp.where(valid, det["scores"], 0.0),
            "classes": jnp.where(valid, det["classes"], 0).astype(jnp.int32),
            "num_detections": valid.sum(1).astype(jnp.int32), "masks": masks & valid[..., None, None]}
  return serve, params
