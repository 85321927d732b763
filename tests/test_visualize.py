"""Drawing: keypoints as dots joined by the skeleton, no masks needed."""

import numpy as np

from mrcnn_jax import visualize


def test_keypoints_are_drawn_as_dots_joined_by_the_skeleton():
  image = np.zeros((40, 40, 3), np.uint8)
  detections = {"boxes": np.asarray([[5, 5, 35, 35]]), "scores": [0.9], "classes": [1], "masks": None,
                "names": ["figure"], "keypoints": np.asarray([[[10, 30, 1.0], [30, 30, 2.0], [20, 8, 0.5]]])}
  picture = np.asarray(visualize.draw_detections(image, detections, skeleton=((0, 1),)))
  assert (picture[30, 10] == 255).all() and (picture[8, 20] == 255).all()     # the dots
  np.testing.assert_array_equal(picture[30, 20], visualize.class_colour(1))   # the line between 0 and 1
  assert not picture[19, 15].any()                                             # no line to keypoint 2
