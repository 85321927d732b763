"""What both converters share: the first fully connected layer's input order (PyTorch flattens pooled
RoI features channel-first, we flatten NHWC) and the name rules' common tail."""

import os

import numpy as np
import pytest
from flax import nnx

from mrcnn_jax import build_model
from mrcnn_jax.convert import checkpoint_io, common, detectron2, torchvision
from mrcnn_jax.train import checkpoint


@pytest.mark.parametrize("converter,name", [(detectron2, detectron2.FC1), (torchvision, torchvision.FC6)])
def test_first_fc_reads_our_nhwc_flatten_as_pytorch_reads_its_nchw_flatten(converter, name):
  rng = np.random.default_rng(0)
  weight = rng.standard_normal((8, 256 * 7 * 7), np.float32)
  pooled = rng.standard_normal((2, 256, 7, 7), np.float32)                 # NCHW, as both pool
  ours = converter.to_ours(name, weight)
  np.testing.assert_allclose(pooled.transpose(0, 2, 3, 1).reshape(2, -1) @ ours, pooled.reshape(2, -1) @ weight.T,
                             rtol=1e-4, atol=1e-3)


def test_rules_end_with_frozen_bn_names_and_kernels():
  rules = ((r"^a\.b\.", "x."),) + common.NORM_AND_KERNEL_RULES
  assert common.apply_rules("a.b.conv1.norm.running_var", rules) == "x/conv1/norm/var"
  assert common.apply_rules("a.b.conv1.norm.weight", rules) == "x/conv1/norm/scale"
  assert common.apply_rules("a.b.fc.weight", rules) == "x/fc/kernel"


def test_an_interrupted_convert_leaves_no_workdir_and_the_next_one_writes_it(make_config, tmp_path, monkeypatch):
  config = make_config()
  params = nnx.state(build_model(config), nnx.Param)
  (tmp_path / "model.pkl").write_bytes(b"weights")
  monkeypatch.setattr(checkpoint_io, "read_checkpoint", lambda src: {})
  save_imported = checkpoint.save_imported

  def interrupted(out, *args):
    os.makedirs(os.path.join(out, "checkpoints", "0.orbax-checkpoint-tmp"))
    raise KeyboardInterrupt                                   # Ctrl-C while the checkpoint is written
  monkeypatch.setattr(checkpoint, "save_imported", interrupted)
  convert = lambda weights: (config, params, {})
  out = tmp_path / "converted"
  with pytest.raises(KeyboardInterrupt):
    common.convert_file(str(tmp_path / "model.pkl"), str(out), "detectron2", convert)
  assert sorted(os.listdir(tmp_path)) == ["model.pkl"]      # no workdir, no temporary one
  monkeypatch.setattr(checkpoint, "save_imported", save_imported)
  common.convert_file(str(tmp_path / "model.pkl"), str(out), "detectron2", convert)
  assert sorted(os.listdir(out)) == ["checkpoints", "config.json"]
  assert sorted(os.listdir(out / "checkpoints")) == ["0"]

