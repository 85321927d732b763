"""The paper's numbers for the rows that experiments/table2.py and keypoints.py reproduce.

He, Gkioxari, Dollar, Girshick, "Mask R-CNN", ICCV 2017 (arXiv:1703.06870), Table 2 (COCO minival,
AP in points). Keys: "<sub-table>/<row>" with the paper's sub-table letters. Each value maps
"segm/AP", "segm/AP50", "segm/AP75" (the paper's mask AP columns) and, where the paper gives them
(Table 2d only), "bbox/AP", "bbox/AP50", "bbox/AP75". The class-agnostic number is from the text of
Section 4.2, which gives mask AP only; Table 6's keypoint rows map "keypoints/AP", "keypoints/AP50",
"keypoints/AP75". RoIWarp and RoIAlign rows are the paper's "ave" variants:
ours average their bilinear samples.
"""

SOURCE = "He et al., Mask R-CNN, ICCV 2017 (arXiv:1703.06870), Table 2"
KEYPOINT_SOURCE = "He et al., Mask R-CNN, ICCV 2017 (arXiv:1703.06870), Table 6"
AGNOSTIC_SOURCE = "He et al., Mask R-CNN, ICCV 2017 (arXiv:1703.06870), Section 4.2 (text)"


def _mask(ap, ap50, ap75):
  return {"segm/AP": ap, "segm/AP50": ap50, "segm/AP75": ap75}


def _keypoints(ap, ap50, ap75):
  return {"keypoints/AP": ap, "keypoints/AP50": ap50, "keypoints/AP75": ap75}


def _box(ap, ap50, ap75):
  return {"bbox/AP": ap, "bbox/AP50": ap50, "bbox/AP75": ap75}


NUMBERS = {
    # (a) Backbone architecture.
    "a/R-50-C4": _mask(30.3, 51.2, 31.5),
    "a/R-101-C4": _mask(32.7, 54.2, 34.3),
    "a/R-50-FPN": _mask(33.6, 55.2, 35.3),
    "a/R-101-FPN": _mask(35.4, 57.3, 37.5),
    "a/X-101-FPN": _mask(36.7, 59.5, 38.9),
    # (b) Multinomial vs. independent masks (ResNet-50-C4).
    "b/softmax": _mask(24.8, 44.1, 25.1),
    "b/sigmoid": _mask(30.3, 51.2, 31.5),
    # (c) RoIAlign at stride 16 (ResNet-50-C4).
    "c/RoIPool": _mask(26.9, 48.8, 26.4),
    "c/RoIWarp (max)": _mask(27.2, 49.2, 27.1),
    "c/RoIWarp (ave)": _mask(27.1, 48.9, 27.1),
    "c/RoIAlign (max)": _mask(30.2, 51.0, 31.8),
    "c/RoIAlign (ave)": _mask(30.3, 51.2, 31.5),
    # (d) RoIAlign at stride 32 (ResNet-50-C5): mask and box AP.
    "d/RoIPool": {**_mask(23.6, 46.5, 21.6), **_box(28.2, 52.7, 26.9)},
    "d/RoIAlign": {**_mask(30.9, 51.8, 32.1), **_box(34.0, 55.3, 36.4)},
    # (e) Mask branch (ResNet-50-FPN).
    "e/MLP fc1024-fc1024-80x28x28": _mask(31.5, 53.7, 32.8),
    "e/MLP fc1024-fc1024-fc1024-80x28x28": _mask(31.5, 54.0, 32.6),
    "e/FCN 4xconv256-deconv-80": _mask(33.6, 55.2, 35.3),
    # Section 4.2: class-specific vs. class-agnostic masks (ResNet-50-C4), mask AP only.
    "4.2/class-specific": {"segm/AP": 30.3},
    "4.2/class-agnostic": {"segm/AP": 29.7},
    # Table 6: RoIAlign vs. RoIPool for keypoint detection (ResNet-50-FPN), keypoint AP.
    "6/RoIPool": _keypoints(59.8, 86.2, 66.7),
    "6/RoIAlign": _keypoints(64.2, 86.6, 69.7),
}
