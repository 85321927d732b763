"""Pure jnp building blocks of Mask R-CNN: boxes, anchors, NMS, matching, RoI pooling, masks.

Modules: boxes, anchors, matching, non_max_suppression, roi_pooling (RoIAlign / RoIPool / RoIWarp),
poolers (FPN level assignment), masks (targets and paste-back), resize (torchvision's bilinear). No function shares its module's name.
"""

from mrcnn_jax.ops.anchors import c4_anchors, fpn_anchors
from mrcnn_jax.ops.boxes import box_area, box_iou, clip_boxes, decode_boxes, encode_boxes
from mrcnn_jax.ops.matching import match, positive_slots, sample_balanced
from mrcnn_jax.ops.non_max_suppression import batched_nms, nms
from mrcnn_jax.ops.roi_pooling import roi_align, roi_pool, roi_warp
from mrcnn_jax.ops.poolers import fpn_levels, multilevel_pool
from mrcnn_jax.ops.keypoints import heatmaps_to_keypoints, keypoint_targets
from mrcnn_jax.ops.masks import mask_targets, paste_masks
from mrcnn_jax.ops.resize import resize_bilinear
