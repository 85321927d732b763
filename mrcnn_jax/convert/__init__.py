"""Pretrained weights in: PyTorch / Detectron2 checkpoints read as numpy, without torch.

``checkpoint_io.read_checkpoint(path)`` returns ``{name: np.ndarray}`` from a ``torch.save`` file (a
torchvision or Detectron2 ``.pth``, zip or pre-1.6 format) or a Detectron2 model-zoo ``.pkl``;
pickled code is never run.
"""
