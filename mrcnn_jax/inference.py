"""Jitted inference on images of any size: ``mrcnn_jax.predict(model, images) -> Detections``.

Images are resized as the input pipeline does (``data.resize``) and padded onto their canvas
(``data.canvas``: by default of a converted model, the resized image rounded up to a multiple of 32, as
Detectron2 and torchvision do; for a model trained here, its training canvases); the images of one call
are grouped by canvas, run through one compiled ``MaskRCNN.detect`` per (canvas, batch bucket), and
mapped back to each original image's pixels (``postprocess``). With ``data.resize`` "torchvision" the
originals go in and the graph normalises and resizes them (torchvision's transform, ``ops.resize``). Batches are padded up to a power of two (at
most ``batch_size``), so a new set of images, of any sizes and count, reuses the compiled function.
Needs JAX, Flax, numpy and PIL only: no TFDS, grain, TensorFlow or pycocotools.
The command line (pictures and COCO JSON for image files) is ``python -m mrcnn_jax.infer``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx

from mrcnn_jax import ops
from mrcnn_jax.data import canvas as canvas_lib
from mrcnn_jax.data.resize import place, resize_and_pad
from mrcnn_jax.postprocess import keypoints_to_original, to_original

SCORE_THRESHOLD = 0.05   # the default of predict and its CLI (Detectron2's inference threshold)


@dataclasses.dataclass
class Detections:
  """Detections in original image pixels; rows past ``num_detections[b]`` are padding.

  boxes [B,D,4] float32 (x1, y1, x2, y2); scores [B,D]; classes [B,D] int32 (1..K, 0 = padding);
  masks: [B,D,H,W] bool when all images share one size, else a list of B arrays [D,H_b,W_b] (None
  without a mask branch); num_detections [B] int32; class_names: the K names (classes index them from
  1); keypoints [B,D,K,3] float32: x, y (original pixels, not clipped) and score (Detectron2's: it can
  exceed 1), None without a keypoint branch.
  """
  boxes: np.ndarray
  scores: np.ndarray
  classes: np.ndarray
  masks: np.ndarray | list | None
  num_detections: np.ndarray
  class_names: tuple = ()
  keypoints: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.boxes)

  def image(self, b: int) -> dict:
    """Image ``b``'s detections without padding: boxes [n,4], scores, classes, masks [n,H,W] (or None),
    names, keypoints [n,K,3] (or None)."""
    n = int(self.num_detections[b])
    classes = self.classes[b, :n]
    names = [self.class_names[c - 1] if 0 < c <= len(self.class_names) else str(c) for c in classes]
    return {"boxes": self.boxes[b, :n], "scores": self.scores[b, :n], "classes": classes,
            "masks": None if self.masks is None else self.masks[b][:n], "names": names,
            "keypoints": None if self.keypoints is None else self.keypoints[b, :n]}


def as_rgb_images(images) -> list[np.ndarray]:
  """One HxW(x1|3|4) uint8 image, a [B,H,W,C] batch or a list -> list of HxWx3 uint8 arrays."""
  if not isinstance(images, (list, tuple)):
    array = np.asarray(images)
    images = list(array) if array.ndim == 4 else [array]
  if not images:
    raise ValueError("images must be an HxWx3 uint8 array, a [B,H,W,3] batch or a non-empty list of images")
  out = []
  for i, image in enumerate(images):
    image = np.asarray(image)
    if image.dtype != np.uint8:
      raise ValueError(f"images[{i}] must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim == 2:
      image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or min(image.shape[:2]) < 1:
      raise ValueError(f"images[{i}] must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    out.append(np.ascontiguousarray(image[..., :3]))
  return out


@functools.partial(jax.jit, static_argnums=0)
def _detect(graphdef, state, image, image_size, score_threshold, nms_threshold):
  return nnx.merge(graphdef, state).detect(image, image_size, score_threshold, nms_threshold)


def detect_resized(model, source, source_size, image_size, canvas, score_threshold, nms_threshold) -> dict:
  """torchvision's transform in the graph: originals source [B,Hs,Ws,3] uint8 (content source_size
  [B,2]) normalised, resized to image_size [B,2] on the (h, w) canvas (``ops.resize_bilinear``), zeros
  around, then ``model.detect_normalized``. Shared by predict and the exported serving function."""
  resize = lambda image, size, out: ops.resize_bilinear(model.normalize_pixels(image), size, out, canvas)
  x = jax.vmap(resize)(source, source_size, image_size)
  return model.detect_normalized(x, image_size, score_threshold, nms_threshold)


@functools.partial(jax.jit, static_argnums=(0, 7))
def _detect_resizing(graphdef, state, source, source_size, image_size, score_threshold, nms_threshold, canvas):
  return detect_resized(nnx.merge(graphdef, state), source, source_size, image_size, canvas, score_threshold,
                        nms_threshold)


def compiled_count() -> int:
  """How many versions of the detection function have been compiled so far (for tests and logs)."""
  return _detect._cache_size() + _detect_resizing._cache_size()


def detect_canvas(model, image, image_size, score_threshold=None, nms_threshold=None) -> dict:
  """``model.detect`` on canvas batches, jitted once per (model structure, shapes); numpy out."""
  if isinstance(model, nnx.Module):
    roi = model.config.model.roi
    graphdef, state = nnx.split(model)
    out = _detect(graphdef, state, image, image_size,
                  np.float32(roi.score_threshold if score_threshold is None else score_threshold),
                  np.float32(roi.nms_threshold if nms_threshold is None else nms_threshold))
  else:  # any object with the same ``detect`` (e.g. a test double)
    out = model.detect(image, image_size)
  return jax.device_get(out)


def _detect_originals(model, examples, image_size, canvas, score_threshold, nms_threshold) -> dict:
  """``_detect_resizing`` on examples whose images are originals on source canvases (padded to the
  largest of them); numpy out."""
  source_shape = np.max([e["image"].shape[:2] for e in examples], axis=0)
  source = np.stack([place(e["image"], tuple(source_shape)) for e in examples])
  graphdef, state = nnx.split(model)
  out = _detect_resizing(graphdef, state, source, np.stack([e["original_size"] for e in examples]), image_size,
                         np.float32(score_threshold), np.float32(nms_threshold), tuple(canvas))
  return jax.device_get(out)


def _bucket(n: int, batch_size: int) -> int:
  return min(batch_size, 1 << (n - 1).bit_length())


def predict(model, images, *, score_threshold: float = SCORE_THRESHOLD, nms_threshold: float | None = None,
            max_detections: int | None = None, batch_size: int = 8) -> Detections:
  """Detects objects in one image or several (see ``as_rgb_images``); returns ``Detections``.

  score_threshold: keep (box, class) pairs with a higher probability; nms_threshold: per-class NMS IoU
  (default: the config's); max_detections: at most this many per image (default and upper bound:
  ``config.model.roi.detections_per_image``).
  """
  config = model.config
  limit = config.model.roi.detections_per_image
  max_detections = limit if max_detections is None else max_detections
  if not 0 < max_detections <= limit:
    raise ValueError(f"max_detections must be in 1..{limit} (config.model.roi.detections_per_image), "
                     f"got {max_detections}")
  if not 0.0 <= score_threshold < 1.0:
    raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold}")
  nms_threshold = config.model.roi.nms_threshold if nms_threshold is None else nms_threshold
  if not 0.0 < nms_threshold <= 1.0:
    raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold}")

  canvas_lib.check(config.data)
  images = as_rgb_images(images)
  examples = [resize_and_pad(im, config.data) for im in images]
  by_canvas = {}
  for i, example in enumerate(examples):
    by_canvas.setdefault(example["canvas"], []).append(i)
  per_image = [None] * len(examples)
  for canvas, indices in by_canvas.items():
    for start in range(0, len(indices), batch_size):
      chunk = indices[start:start + batch_size]
      padded = [examples[i] for i in chunk + [chunk[-1]] * (_bucket(len(chunk), batch_size) - len(chunk))]
      image_size = np.stack([e["image_size"] for e in padded])
      if config.data.resize == "torchvision":
        result = _detect_originals(model, padded, image_size, canvas, score_threshold, nms_threshold)
      else:
        result = detect_canvas(model, np.stack([e["image"] for e in padded]), image_size, score_threshold,
                               nms_threshold)
      for j, i in enumerate(chunk):
        per_image[i] = {k: v[j, :max_detections] for k, v in result.items()}
  det = {k: np.stack([p[k] for p in per_image]) for k in per_image[0]}

  boxes, masks, keypoints = [], [], []
  for b, example in enumerate(examples):
    sizes = example["image_size"], example["original_size"]
    box, mask = to_original(det["boxes"][b], det["masks"][b] if "masks" in det else None, *sizes,
                            config.model.mask.paste_border)
    boxes.append(box)
    masks.append(None if mask is None else mask & det["valid"][b][:, None, None])
    if "keypoints" in det:
      keypoints.append(keypoints_to_original(det["keypoints"][b], *sizes) * det["valid"][b][:, None, None])
  if "masks" not in det:
    masks = None
  elif len({m.shape for m in masks}) == 1:
    masks = np.stack(masks)
  return Detections(
      boxes=np.stack(boxes) * det["valid"][..., None], scores=np.where(det["valid"], det["scores"], 0.0),
      classes=np.where(det["valid"], det["classes"], 0).astype(np.int32),
      masks=masks, num_detections=det["valid"].sum(1).astype(np.int32),
      class_names=tuple(config.class_names), keypoints=np.stack(keypoints) if keypoints else None)
