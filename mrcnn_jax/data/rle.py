"""Instance masks as COCO compressed RLE (pycocotools only, no TFDS)."""

import numpy as np
import pycocotools.mask as mask_utils


def encode_mask(mask: np.ndarray) -> bytes:
  """Compressed RLE counts of a [H, W] bool/uint8 mask."""
  return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


def decode_mask(counts: bytes, height: int, width: int) -> np.ndarray:
  """[height, width] uint8 mask in {0, 1} from compressed RLE counts."""
  return mask_utils.decode({"size": [height, width], "counts": counts})
