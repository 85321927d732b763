"""Pure jnp building blocks of Mask R-CNN: boxes, anchors, NMS, matching, RoI pooling, masks.

Note: `nms` and `roi_align` here are the functions, which shadow their same-named submodules as
package attributes; import module internals with `from mrcnn_jax.ops.nms import ...`.
"""

from mrcnn_jax.ops.anchors import c4_anchors, fpn_anchors
from mrcnn_jax.ops.boxes import box_area, box_iou, clip_boxes, decode_boxes, encode_boxes
from mrcnn_jax.ops.matching import match, sample_balanced
from mrcnn_jax.ops.nms import batched_nms, nms
from mrcnn_jax.ops.roi_align import roi_align, roi_pool, roi_warp
from mrcnn_jax.ops.poolers import fpn_levels, multilevel_pool
from mrcnn_jax.ops.masks import mask_targets, paste_masks
