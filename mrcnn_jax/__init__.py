"""mrcnn_jax: Mask R-CNN (He et al., ICCV 2017) in JAX / Flax NNX.

    model = mrcnn_jax.build_model(mrcnn_jax.configs.get("shapes_tiny"))   # or mrcnn_jax.load(workdir)
    detections = mrcnn_jax.predict(model, images)                           # numpy, original pixels
"""

from mrcnn_jax import configs
from mrcnn_jax.checkpoints import load
from mrcnn_jax.model.mask_rcnn import MaskRCNN, build_model
from mrcnn_jax.predict import Detections, predict

__all__ = ["Detections", "MaskRCNN", "build_model", "configs", "load", "predict"]
