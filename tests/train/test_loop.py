"""Loop behaviour that does not depend on the model, on a small stand-in with the model's API:
the NaN guard, SIGTERM and SIGINT handling, config checks, and what the loop writes into the workdir."""

import json
import os
import shutil
import signal
import socket
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_launch import saved_steps

from mrcnn_jax.errors import UserError
from mrcnn_jax.train import loop, preemption
from mrcnn_jax.train.checkpoint import checkpoint_dir, restore_variables


class StandIn(nnx.Module):
  """``losses(batch, key)`` like MaskRCNN's: a conv over the image regressing the mean GT box."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(3, 4, (3, 3), strides=(4, 4), rngs=rngs)
    self.norm = nnx.GroupNorm(4, num_groups=2, rngs=rngs)
    self.head = nnx.Linear(4, 4, rngs=rngs)

  def losses(self, batch, key):
    x = self.norm(self.conv(batch["image"].astype(jnp.float32) / 255)).mean((1, 2))
    pred = self.head(x) + 0.01 * jax.random.normal(key, (x.shape[0], 4))
    target = batch["gt_boxes"].mean(1) / 64
    return {"box": jnp.mean((pred - target) ** 2), "cls": jnp.mean(pred ** 2)}


class Hooked:
  """A grain iterator wrapper that calls ``hook(n, batch)`` on the n-th batch (1-based)."""

  def __init__(self, inner, hook):
    self.inner, self.hook, self.count = inner, hook, 0

  def __next__(self):
    self.count += 1
    return self.hook(self.count, next(self.inner))

  def get_state(self):
    return self.inner.get_state()

  def set_state(self, state):
    self.inner.set_state(state)

  def __getattr__(self, name):  # the rest of the iterator's API (e.g. what a restore calls)
    return getattr(self.inner, name)


@pytest.fixture
def stand_in(monkeypatch, trainer_config):
  """Returns ``install(hook)``: the loop then trains StandIn on trainer_config with hooked batches."""
  jax.config.update("jax_disable_most_optimizations", True)
  monkeypatch.setattr(loop, "build_model", lambda config, seed: StandIn(nnx.Rngs(seed)))
  train_iterator = loop.data_lib.train_iterator

  def install(hook):
    monkeypatch.setattr(loop.data_lib, "train_iterator",
                        lambda *args, **kwargs: Hooked(train_iterator(*args, **kwargs), hook))
  return install


def test_nan_loss_names_step_and_term_and_keeps_last_good_checkpoint(stand_in, trainer_config, tmp_path):
  def poison(n, batch):
    return {**batch, "gt_boxes": np.full_like(batch["gt_boxes"], np.nan)} if n == 3 else batch
  stand_in(poison)
  config = trainer_config.copy_and_resolve_references()
  config.train.steps, config.train.log_every = 6, 100      # found one step late, while step 4 runs
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 3: box=nan; stopping") as error:
    loop.train(config, str(tmp_path))
  assert "cls" not in str(error.value)
  assert saved_steps(tmp_path) == [2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_and_returns(stand_in, trainer_config, tmp_path, signum):
  def preempt(n, batch):
    if n == 3:
      os.kill(os.getpid(), signum)
    return batch
  stand_in(preempt)
  handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with pytest.raises(loop.Stopped) as stopped:
    loop.train(trainer_config, str(tmp_path))
  assert stopped.value.step == 3 and stopped.value.signal == signum
  assert saved_steps(tmp_path) == [2, 3]
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers


def test_resume_drops_the_metrics_logged_past_the_restored_step(stand_in, trainer_config, tmp_path):
  stand_in(lambda n, batch: batch)
  loop.train(trainer_config, str(tmp_path))                      # 4 steps, checkpoints 2 and 4
  shutil.rmtree(os.path.join(checkpoint_dir(str(tmp_path)), "4"))   # as if killed before saving 4
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 5, "loss"')                             # and mid-line
  loop.train(trainer_config, str(tmp_path))                      # resumes from 2
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in lines] == [1, 2, 3, 4]
  events = [e for f in sorted((tmp_path / "tensorboard").iterdir()) for e in tensorboard_events(f)]
  assert [e.session_log.status for e in events if e.HasField("session_log")] == [1, 1]
  assert [e.step for e in events if e.HasField("session_log")] == [1, 3]   # TensorBoard's purge


def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(stand_in, trainer_config, tmp_path, caplog):
  stand_in(lambda n, batch: batch)
  loop.train(trainer_config, str(tmp_path))                      # 4 steps, checkpoints 2 and 4
  ckpt = checkpoint_dir(str(tmp_path))
  like = {"params": nnx.state(StandIn(nnx.Rngs(0)), nnx.Param)}
  shutil.rmtree(os.path.join(ckpt, "4", "state"))                # as if half deleted
  restored = restore_variables(str(tmp_path), like)              # mrcnn_jax.load's path
  assert jax.tree.leaves(restored["params"])
  assert f"checkpoint {ckpt}/4 cannot be read" in caplog.text and "using step 2 instead" in caplog.text
  loop.train(trainer_config, str(tmp_path))                      # resumes from 2, saves 4 anew
  assert saved_steps(tmp_path) == [2, 4] and os.path.isdir(os.path.join(ckpt, "4.unreadable"))
  restore_variables(str(tmp_path), like, step=4)
  shutil.rmtree(os.path.join(ckpt, "2", "state"))
  shutil.rmtree(os.path.join(ckpt, "4", "state"))
  with pytest.raises(UserError, match=f"no checkpoint under {ckpt} can be read: steps 2, 4"):
    restore_variables(str(tmp_path), like)


def test_a_second_trainer_is_refused_and_a_stale_lock_taken_over(stand_in, trainer_config, tmp_path, caplog):
  stand_in(lambda n, batch: batch)
  lock = tmp_path / "lock"
  lock.write_text(f"{socket.gethostname()} {os.getpid()}")      # a trainer that runs: this process
  with pytest.raises(UserError, match=rf"{tmp_path} is in use by process {os.getpid()} on "):
    loop.train(trainer_config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()
  lock.write_text(f"{socket.gethostname()} 4194305")             # above Linux's largest pid: not running
  loop.train(trainer_config, str(tmp_path))
  assert "taking over the lock" in caplog.text and saved_steps(tmp_path) == [2, 4] and not lock.exists()


def tensorboard_events(path):
  """The Event protos of one TensorBoard event file (length, crc, proto, crc records)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  data, events, offset = path.read_bytes(), [], 0
  while offset < len(data):
    (length,) = struct.unpack("<Q", data[offset:offset + 8])
    events.append(event_pb2.Event.FromString(data[offset + 12:offset + 12 + length]))
    offset += 12 + length + 4
  return events


@pytest.mark.parametrize("num_classes, class_names, message", [
    (2, (), r"config.num_classes=2 but dataset .* has 4 classes \('circle', 'square', 'triangle', 'bar'\)"),
    (4, ("a", "b"), r"config.class_names has 2 names but config.num_classes=4"),
    (None, None, r"config.train.steps must be at least 1, got 0"),
])
def test_bad_config_is_refused_before_building_the_model(stand_in, trainer_config, tmp_path, monkeypatch,
                                                         num_classes, class_names, message):
  monkeypatch.setattr(loop, "build_model", lambda config, seed: pytest.fail("model built"))
  config = trainer_config.copy_and_resolve_references()
  if num_classes is None:
    config.train.steps = 0
  else:
    config.num_classes, config.class_names = num_classes, class_names
  with pytest.raises(UserError, match=message):
    loop.train(config, str(tmp_path))


def test_a_learning_rate_that_is_not_positive_is_refused(trainer_config, tmp_path):
  config = trainer_config.copy_and_resolve_references()
  config.train.base_lr = -0.02
  with pytest.raises(UserError, match=r"config.train.base_lr must be positive, got -0.02"):
    loop.train(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()


def test_classes_come_from_the_dataset_when_unset(stand_in, trainer_config, tmp_path):
  stand_in(lambda n, batch: batch)
  config = trainer_config.copy_and_resolve_references()
  config.num_classes, config.class_names, config.train.steps = 0, (), 1
  loop.train(config, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert (saved["num_classes"], saved["class_names"]) == (4, ["circle", "square", "triangle", "bar"])


def test_the_saved_data_dir_is_absolute(stand_in, trainer_config, tmp_path, monkeypatch):
  stand_in(lambda n, batch: batch)
  config = trainer_config.copy_and_resolve_references()
  data_dir = config.data.data_dir
  monkeypatch.chdir(os.path.dirname(data_dir))
  config.data.data_dir, config.train.steps = os.path.basename(data_dir), 1
  loop.train(config, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["data"]["data_dir"] == data_dir


def test_workdir_has_config_and_metrics(stand_in, trainer_config, tmp_path):
  stand_in(lambda n, batch: batch)
  state, metrics = loop.train(trainer_config, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["data"]["canvas"] == 64
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in lines] == [1, 2, 3, 4]
  assert {"box", "cls", "loss", "grad_norm", "lr", "img_per_sec"} <= set(lines[-1])
  assert lines[-1]["loss"] == pytest.approx(lines[-1]["box"] + lines[-1]["cls"], rel=1e-6)
  assert metrics["loss"] == lines[-1]["loss"] and int(state["step"]) == 4
  assert os.listdir(tmp_path / "tensorboard")


@pytest.mark.parametrize("eval_every, eval_steps", [(2, [2, 4, 5]), (0, [5]), (-1, [])])
def test_evaluation_cadence(stand_in, trainer_config, tmp_path, monkeypatch, eval_every, eval_steps):
  stand_in(lambda n, batch: batch)
  calls = []
  monkeypatch.setattr(loop.evaluate_lib, "evaluate",
                      lambda model, config, workdir: calls.append(model) or {"bbox/AP": 0.5})
  config = trainer_config.copy_and_resolve_references()
  config.train.steps, config.train.eval_every, config.train.log_every = 5, eval_every, 100
  state, metrics = loop.train(config, str(tmp_path))
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["step"] for m in lines if "eval/bbox/AP" in m] == eval_steps
  assert len(calls) == len(eval_steps) and (metrics.get("bbox/AP") == 0.5) == bool(eval_steps)
  if calls:                                          # the final evaluation sees the final weights
    np.testing.assert_array_equal(calls[-1].head.kernel[...], state["params"]["head"]["kernel"][...])


def test_ctrl_c_in_a_multiprocess_job_goes_through_the_preemption_service(monkeypatch):
  received = []                        # stands in for JAX's SIGTERM notifier of a distributed job
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
  sigint_before = signal.getsignal(signal.SIGINT)  # SIG_IGN where a shell started the tests with `&`
  try:
    monkeypatch.setattr(preemption.jax, "process_count", lambda: 2)
    monkeypatch.setattr(preemption.multihost_utils, "reached_preemption_sync_point",
                        lambda step: bool(received))
    watcher = preemption.PreemptionWatcher()
    assert not watcher.should_stop(1)
    os.kill(os.getpid(), signal.SIGINT)
    assert received == [signal.SIGTERM]                        # every process stops at one step
    assert watcher.should_stop(2) and watcher.signal == signal.SIGINT
    watcher.close()
    assert signal.getsignal(signal.SIGINT) is sigint_before
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_a_resumed_run_keeps_its_checkpoint_and_does_not_import_again(stand_in, trainer_config, tmp_path,
                                                                       monkeypatch):
  stand_in(lambda n, batch: batch)
  loop.train(trainer_config, str(tmp_path))                      # 4 steps, checkpoints 2 and 4
  calls = []
  monkeypatch.setattr(loop.init_from_lib, "take_fields", lambda config, workdir: calls.append(workdir))
  monkeypatch.setattr(loop.init_from_lib, "load", lambda *args: pytest.fail("imported into a resumed run"))
  config = trainer_config.copy_and_resolve_references()
  config.train.steps, config.train.init_from = 5, "imported"
  state, _ = loop.train(config, str(tmp_path))
  assert int(state["step"]) == 5 and calls == ["imported"]       # its config fields still apply


class FakeClock:
  """``time.perf_counter`` for the loop where each training batch takes ``step_s`` seconds."""

  def __init__(self, step_s: float):
    self.now, self.step_s = 1000.0, step_s

  def __call__(self):
    return self.now

  def batch(self, n, batch):
    self.now += self.step_s
    return batch


def test_a_time_budget_shortens_the_schedule_and_a_resumed_run_keeps_it(stand_in, trainer_config,
                                                                        tmp_path, monkeypatch, capsys):
  clock = FakeClock(step_s=1.0)
  monkeypatch.setattr(loop.time, "perf_counter", clock)
  stand_in(clock.batch)
  evaluations = []
  monkeypatch.setattr(loop.evaluate_lib, "evaluate", lambda model, *args: evaluations.append(1) or {})
  config = trainer_config.copy_and_resolve_references()
  t = config.train
  t.steps, t.decay_steps, t.lr_schedule, t.log_every, t.checkpoint_every = 100, (80, 90), "step", 1, 0
  t.time_budget_s, t.eval_every = 80.0, 20
  state, _ = loop.train(config, str(tmp_path))
  # 40 steps in 40 s leave 40 s, of which 96 % buy 38 more steps: 78; lr decays at 80 and 90 % of them.
  assert int(state["step"]) == 78
  saved = json.loads((tmp_path / "config.json").read_text())["train"]
  assert (saved["steps"], saved["decay_steps"], saved["eval_every"]) == (78, [62, 70], 0)
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  lr = {m["step"]: m["lr"] for m in lines if "lr" in m}
  assert lr[62] == pytest.approx(10 * lr[63]) and lr[63] == lr[70] == pytest.approx(10 * lr[71])
  assert "1.00 s/step measured" in capsys.readouterr().out
  assert len(evaluations) == 1                                # a budgeted run evaluates at the end only
  assert json.loads((tmp_path / "budget_plan.json").read_text())["steps"] == 78

  config = trainer_config.copy_and_resolve_references()     # the same command again: nothing to do
  config.train.steps, config.train.time_budget_s = 100, 80.0
  state, _ = loop.train(config, str(tmp_path))
  assert int(state["step"]) == 78


def test_a_time_budget_re_measures_and_re_plans_until_the_first_lr_decay(stand_in, trainer_config, tmp_path,
                                                                          monkeypatch, capsys):
  """A slow start, then a faster rate: the re-plan gives the compiled step new schedule lengths, and
  the step is compiled once."""
  clock = FakeClock(step_s=1.0)
  monkeypatch.setattr(loop.time, "perf_counter", clock)

  def slow_start(n, batch):                                   # 1 s/step while compiling and warming up
    clock.step_s = 1.0 if n <= 40 else 0.25
    return clock.batch(n, batch)
  stand_in(slow_start)
  steps = []
  make_train_step = loop.train_step_lib.make_train_step
  monkeypatch.setattr(loop.train_step_lib, "make_train_step",
                      lambda *args, **kwargs: steps.append(make_train_step(*args, **kwargs)) or steps[-1])
  config = trainer_config.copy_and_resolve_references()
  t = config.train
  t.steps, t.decay_steps, t.lr_schedule, t.log_every, t.checkpoint_every = 400, (320, 360), "step", 10, 0
  t.time_budget_s, t.eval_every = 200.0, -1
  state, _ = loop.train(config, str(tmp_path))
  # Step 40: 1 s/step leaves 0.96 * 160 s for 153 more steps (decay at 154, 174). Step 90: 0.25 s/step
  # over 40-90, so the 310 steps left need 78 s of the 148 s left: the configured schedule after all.
  plans = [line for line in capsys.readouterr().out.splitlines() if line.startswith("time budget")]
  assert len(plans) == 2, plans
  assert "training 193 steps instead" in plans[0]
  assert "0.25 s/step measured, so the configured 400 steps need ~100 s and fit" in plans[1]
  assert int(state["step"]) == 400
  saved = json.loads((tmp_path / "config.json").read_text())["train"]
  assert (saved["steps"], saved["decay_steps"]) == (400, [320, 360])
  lr = {m["step"]: m["lr"] for m in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
        if "lr" in m}
  # lr logged as the mean over steps 151-160 (the first plan's decay was at 154), 301-310 and 321-330
  assert lr[160] == pytest.approx(lr[310]) == pytest.approx(10 * lr[330])
  assert len(steps) == 1 and steps[0]._cache_size() == 1                 # one step, compiled once


def test_a_time_budget_that_fits_trains_the_configured_steps(stand_in, trainer_config, tmp_path,
                                                             monkeypatch, capsys):
  clock = FakeClock(step_s=0.5)
  monkeypatch.setattr(loop.time, "perf_counter", clock)
  stand_in(clock.batch)
  config = trainer_config.copy_and_resolve_references()
  config.train.steps, config.train.time_budget_s, config.train.checkpoint_every = 50, 60.0, 0
  state, _ = loop.train(config, str(tmp_path))
  assert int(state["step"]) == 50
  assert "configured 50 steps need ~25 s and fit" in capsys.readouterr().out
