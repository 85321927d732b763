"""python -m mrcnn_jax.train --config mrcnn_jax/configs/shapes_full.py --workdir runs/shapes_full

Longer shapes run (a GPU, or a long CPU run): wider ResNet-34-FPN, 10k training images, 20k steps;
aims at mask AP >= 0.80. Prepare its dataset first:
    python -m mrcnn_jax.data.prepare shapes --data_dir data --num_train 10000 --num_val 500
"""

from mrcnn_jax.configs import shapes_tiny


def get_config():
  config = shapes_tiny.get_config()
  config.data.name = "mrcnn_shapes/seed0_train10000_val500_px128"
  config.data.batch_size = 16
  m = config.model
  m.backbone, m.width, m.fpn_channels = "resnet34", 32, 128
  m.rpn.batch_per_image, m.roi.batch_per_image = 128, 128
  m.roi.fc_dim, m.mask.conv_dim = 512, 128
  m.mask.num_convs, m.mask.rois_per_image = 4, 0  # the paper's mask head, on every foreground RoI
  t = config.train
  t.steps, t.warmup_steps, t.decay_steps = 20_000, 500, (15_000, 18_000)
  t.checkpoint_every, t.eval_every = 2000, 5000
  return config
