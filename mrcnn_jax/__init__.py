"""mrcnn_jax: Mask R-CNN (He et al., ICCV 2017) in JAX / Flax NNX.

    model = mrcnn_jax.build_model(mrcnn_jax.configs.get("shapes_tiny"))   # or mrcnn_jax.load(workdir)
    detections = mrcnn_jax.predict(model, images)                           # numpy, original pixels

Importing the package (and predicting) loads JAX, Flax and PIL only; the training stack (TFDS, grain,
Orbax, pycocotools) is imported by the modules that need it (``load`` imports Orbax).
"""

from mrcnn_jax import configs
from mrcnn_jax.checkpoints import load
from mrcnn_jax.inference import Detections, predict
from mrcnn_jax.model.mask_rcnn import MaskRCNN, build_model

__all__ = ["Detections", "MaskRCNN", "build_model", "configs", "load", "predict"]
