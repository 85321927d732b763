"""scripts/train_tpu.sh --dry-run prints the commands it would run (nothing is executed)."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "train_tpu.sh")


def dry_run(*args):
  result = subprocess.run(["bash", SCRIPT, "--dry-run", *args], capture_output=True, text=True,
                          env=dict(os.environ, USER="alice"), check=False)
  return result.returncode, result.stdout.splitlines(), result.stderr


def test_tpu_slice_commands():
  rc, lines, err = dry_run("--tpu", "pod", "--zone", "us-central2-b", "--project", "proj",
                           "--config", "mrcnn_jax/configs/shapes_tiny.py", "--workdir", "gs://b/run",
                           "--", "--config.train.steps=10", "--config.data.data_dir=gs://b/tfds")
  assert rc == 0, err
  target = "pod --zone us-central2-b --worker=all --project proj"
  assert lines[0] == ("bash -c 'git ls-files -z | tar --null --ignore-failed-read -T - "
                      "-czf /tmp/mrcnn_jax-alice.tar.gz'")
  assert lines[1] == ("gcloud compute tpus tpu-vm scp /tmp/mrcnn_jax-alice.tar.gz pod: --zone "
                      "us-central2-b --worker=all --project proj")
  assert lines[2].startswith(f"gcloud compute tpus tpu-vm ssh {target} --command 'mkdir -p mrcnn_jax")
  assert "pip install -q -r requirements.txt" in lines[2] and "jax[tpu]==" in lines[2]
  assert lines[3] == (f"gcloud compute tpus tpu-vm ssh {target} --command 'cd mrcnn_jax && "
                      "TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m mrcnn_jax.train --distributed=yes "
                      "--config mrcnn_jax/configs/shapes_tiny.py --workdir gs://b/run "
                      "--config.train.steps=10 --config.data.data_dir=gs://b/tfds'")
  assert len(lines) == 4


def test_local_commands():
  rc, lines, err = dry_run("--local", "--config", "mrcnn_jax/configs/base.py", "--workdir", "runs/x",
                           "--", "--config.seed=1")
  assert rc == 0, err
  assert lines == ["source scripts/env.sh", "python -m mrcnn_jax.train --config mrcnn_jax/configs/base.py "
                   "--workdir runs/x --config.seed=1"]


@pytest.mark.parametrize("args, message", [
    (["--config", "c.py", "--workdir", "w"], "--tpu and --zone are required"),
    (["--tpu", "t", "--zone", "z", "--workdir", "w"], "--config and --workdir are required"),
    (["--bogus"], "unknown argument: --bogus"),
    (["--local", "--config", "configs/typo.py", "--workdir", "w"], "no such config file: configs/typo.py")])
def test_bad_arguments(args, message):
  rc, _, err = dry_run(*args)
  assert rc == 2 and message in err
