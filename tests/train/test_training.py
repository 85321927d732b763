"""The trainer end to end on the real (tiny) Mask R-CNN: 1 vs 4 devices, 2 processes with
jax.distributed, resume after SIGKILL. Each run is a subprocess (see worker.py); they share a
persistent compilation cache, so the CLI runs of the resume test reuse the 4-device program."""

import os
import time

import numpy as np
import portpicker
import pytest
from flax import nnx
from train_launch import (config_file, finish, load_json_lines, load_params, start_cli, start_worker)

from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import checkpoint

TINY_CONFIG = "mrcnn_jax/configs/shapes_tiny.py"


def assert_params_close(actual, expected, **tolerance):
  names = sorted(k for k in expected if k != "losses")
  assert sorted(k for k in actual if k != "losses") == names
  for name in names:
    np.testing.assert_allclose(actual[name], expected[name], err_msg=name, **tolerance)


def saved_steps(workdir) -> list[int]:
  directory = checkpoint.checkpoint_dir(str(workdir))
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


@pytest.fixture(scope="module")
def steps_runs(tiny_config, jax_env, tmp_path_factory):
  """{devices: parameters and per-step losses} after training on a 1- and a 4-device mesh."""
  tmp = tmp_path_factory.mktemp("steps")
  finish(start_worker(jax_env, "steps", config_file(tiny_config, tmp / "config.json"), tmp / "params",
                      JAX_NUM_CPU_DEVICES=4))
  return {n: load_params(tmp / f"params-{n}dev.npz") for n in (1, 4)}


def test_four_devices_match_one_device(steps_runs):
  reference, sharded = steps_runs[1], steps_runs[4]
  np.testing.assert_allclose(sharded["losses"], reference["losses"], rtol=1e-5)
  assert_params_close(sharded, reference, rtol=1e-4, atol=1e-6)


def test_two_processes_match_one_process(steps_runs, tiny_config, jax_env, tmp_path):
  cfg = config_file(tiny_config, tmp_path / "config.json")
  port = portpicker.pick_unused_port()
  procs = [start_worker(jax_env, "multihost", cfg, tmp_path / "run", tmp_path / f"params{i}.npz",
                        JAX_NUM_CPU_DEVICES=2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                        JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=i) for i in range(2)]
  for proc in procs:
    finish(proc)
  first, second = (load_params(tmp_path / f"params{i}.npz") for i in range(2))
  assert_params_close(second, first, rtol=0, atol=0)                    # bitwise identical replicas
  assert_params_close(first, steps_runs[1], rtol=1e-4, atol=1e-6)
  last = saved_steps(tmp_path / "run")[-1]
  data_states = os.listdir(os.path.join(checkpoint.checkpoint_dir(str(tmp_path / "run")), str(last), "data"))
  assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(data_states)


def test_resume_after_sigkill_matches_uninterrupted_run(tiny_config, jax_env, tmp_path):
  d, t, steps = tiny_config.data, tiny_config.train, 5
  overrides = [f"--config.data.data_dir={d.data_dir}", f"--config.data.name={d.name}",
               *(f"--config.data.{k}=64" for k in ("canvas", "min_size", "max_size")),
               "--config.data.batch_size=4", f"--config.train.steps={steps}", "--config.train.warmup_steps=0",
               f"--config.train.checkpoint_every={t.checkpoint_every}", "--config.train.log_every=1",
               "--config.train.keep=10", "--config.train.eval_every=-1"]
  full, resumed = tmp_path / "full", tmp_path / "resumed"
  four = {"JAX_NUM_CPU_DEVICES": 4}
  uninterrupted = start_cli(jax_env, TINY_CONFIG, full, *overrides, **four)
  killed = start_cli(jax_env, TINY_CONFIG, resumed, *overrides, **four)
  deadline = time.time() + 240
  while not os.path.isdir(os.path.join(checkpoint.checkpoint_dir(str(resumed)), "2")):
    assert killed.poll() is None, finish(killed, expect_ok=False)
    assert time.time() < deadline, "no checkpoint after 240 s"
    time.sleep(0.05)
  killed.kill()                                                           # SIGKILL, mid-training
  finish(killed, expect_ok=False)
  assert saved_steps(resumed)[-1] < steps
  finish(start_cli(jax_env, TINY_CONFIG, resumed, *overrides, **four))
  finish(uninterrupted)

  like = nnx.state(nnx.eval_shape(lambda: build_model(tiny_config)), nnx.Param)
  expected, actual = (checkpoint.restore_params(str(w), like, step=steps) for w in (full, resumed))
  for (path, a), (_, b) in zip(nnx.to_flat_state(actual), nnx.to_flat_state(expected)):
    np.testing.assert_array_equal(a[...], b[...], err_msg=str(path))
  losses = [{m["step"]: m["loss"] for m in load_json_lines(w / "metrics.jsonl")} for w in (full, resumed)]
  assert losses[0] == losses[1] and sorted(losses[0]) == list(range(1, steps + 1))
