"""``python -m mrcnn_jax.train`` on user mistakes: one line on stderr, exit code 2, nothing compiled."""

import sys

from train_launch import finish, start, start_cli

from mrcnn_jax.checkpoints import save_config
from mrcnn_jax.configs import shapes_tiny

TINY_CONFIG = "mrcnn_jax/configs/shapes_tiny.py"


def test_user_errors_are_one_line_and_exit_2(shapes_data, jax_env, tmp_path):
  data_dir, name = shapes_data
  data = [f"--config.data.data_dir={data_dir}", f"--config.data.name={name}"]
  cases = {
      "typo": ([*data, "--config.model.bakbone=resnet34"],
               "error: unknown config key model.bakbone (did you mean model.backbone?)"),
      "classes": ([*data, "--config.num_classes=2"],
                  f"error: config.num_classes=2 but dataset '{name}' has 4 classes"),
      "steps": ([*data, "--config.train.steps=0"], "error: config.train.steps must be at least 1, got 0"),
      "devices": ([*data, "--config.data.batch_size=4"],   # on 3 devices
                  "error: config.data.batch_size=4 must be divisible by the number of processes (1) "
                  "and of devices (3)"),
      "no_data": ([f"--config.data.data_dir={tmp_path / 'empty'}"],
                  "error: config.data.name='mrcnn_shapes': no prepared dataset in"),
  }
  runs = {case: start_cli(jax_env, TINY_CONFIG, tmp_path / case, *flags,
                          JAX_NUM_CPU_DEVICES=3 if case == "devices" else 1)
          for case, (flags, _) in cases.items()}   # all at once: each only starts up and stops
  for case, proc in runs.items():
    out = finish(proc, timeout=240, expect_ok=False)
    assert proc.returncode == 2, (case, out)
    assert "Traceback" not in out, (case, out)
    assert out.strip().splitlines()[-1].startswith(cases[case][1]), (case, out)



def test_another_model_on_a_trained_workdir_is_refused_before_anything_is_written(shapes_data, jax_env, tmp_path):
  data_dir, name = shapes_data
  config = shapes_tiny.get_config()
  config.num_classes, config.model.roi.fc_dim = 4, 256
  workdir = tmp_path / "run"
  save_config(config, str(workdir))
  (workdir / "checkpoints" / "5").mkdir(parents=True)
  saved = (workdir / "config.json").read_text()
  proc = start_cli(jax_env, TINY_CONFIG, workdir, f"--config.data.data_dir={data_dir}", f"--config.data.name={name}")
  out = finish(proc, timeout=240, expect_ok=False)
  assert proc.returncode == 2 and "Traceback" not in out, out
  assert out.strip().splitlines()[-1] == (f"error: {workdir} holds checkpoints of another model "
                                          "(model.roi.fc_dim: 256 -> 1024): use another --workdir, or the "
                                          "workdir's values")
  assert (workdir / "config.json").read_text() == saved


def test_flag_mistakes_are_one_line_and_exit_2(jax_env, tmp_path):
  train = (sys.executable, "-m", "mrcnn_jax.train")
  usage = "python -m mrcnn_jax.train --config CONFIG.py --workdir DIR [--config.a.b=value ...]"
  cases = {
      "no_config": (["--workdir", tmp_path], f"error: --config is required: {usage}"),
      "no_workdir": (["--config", TINY_CONFIG], f"error: --workdir is required: {usage}"),
      "no_file": (["--config", "nope.py", "--workdir", tmp_path], "error: --config nope.py: no such file"),
      "bad_value": (["--config", TINY_CONFIG, "--workdir", tmp_path, "--config.train.steps=abc"],
                    "error: flag --config.train.steps=abc: invalid literal for int() with base 10: 'abc'"),
  }
  runs = {case: start(jax_env, *train, *argv) for case, (argv, _) in cases.items()}
  for case, proc in runs.items():
    out = finish(proc, timeout=240, expect_ok=False)
    assert proc.returncode == 2 and "Traceback" not in out, (case, out)
    assert out.strip().splitlines()[-1] == cases[case][1], (case, out)

