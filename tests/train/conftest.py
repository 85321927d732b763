"""Fixtures of the training tests: a tiny prepared dataset, a tiny config, a subprocess environment.

Training runs in subprocesses (device count and jax.distributed are fixed per process) that share
one persistent compilation cache, so each distinct train-step program compiles once per session.
"""

import os

import pytest

from mrcnn_jax.configs import shapes_tiny, tiny
from mrcnn_jax.data import prepare

@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory):
  """(data_dir, data.name) of mrcnn_shapes with 16 train / 4 val images of 64 px."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  name, _, _ = prepare.prepare_shapes(data_dir, seed=3, num_train=16, num_val=4, image_size=64)
  return data_dir, name


@pytest.fixture(scope="session")
def trainer_config(shapes_data):
  """The ``tiny`` preset (64 px canvas, a few RoIs) at width 16, global batch 4, 4 steps at full
  learning rate, no evaluation, with the paper's recipe (SGD, no norm in the FPN and mask head).

  Not shapes_tiny's AdamW and head GroupNorm: the tests compare runs whose gradients differ by float
  rounding (another reduction order over devices), and both divide by a standard deviation that can
  be near zero here (Adam's sqrt(v), GroupNorm of one-channel groups on 64 px images), which magnifies
  those differences (losses 4e-4 apart after two AdamW steps) beyond what SGD's update does.
  """
  config = shapes_tiny.paper_recipe(tiny.get_config())
  config.data.data_dir, config.data.name = shapes_data
  config.data.batch_size = 4
  t = config.train
  t.steps, t.warmup_steps, t.log_every, t.checkpoint_every, t.keep, t.eval_every = 4, 0, 1, 2, 10, -1
  return config


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory):
  """Environment for JAX subprocesses: CPU, cheap compiles, a shared persistent compilation cache."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="true",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("XLA_FLAGS", None)
  return env
