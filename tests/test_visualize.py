"""Drawing: keypoints as dots joined by the skeleton, no masks needed."""

import numpy as np

from mrcnn_jax import visualize


def test_keypoints_are_drawn_as_dots_joined_by_the_skeleton():
  keypoints = np.asarray([[[4.5, 4.5, 0.9], [24.5, 4.5, 0.9], [4.5, 24.5, 0.01]]], np.float32)
  detections = {"boxes": np.float32([[2, 2, 28, 28]]), "scores": [0.9], "classes": [1], "names": ["person"],
                "masks": None, "keypoints": keypoints}
  picture = np.asarray(visualize.draw_detections(np.zeros((32, 32, 3), np.uint8), detections,
                                                 skeleton=((0, 1), (0, 2))))
  assert picture[4, 4].any() and picture[4, 14].any()          # dot 0 and the limb 0-1
  assert not picture[24, 4].any() and not picture[20, 4].any()  # keypoint 2 scores <= 0.05: no dot, no limb
