"""The training loop: data -> sharded train step -> logs, checkpoints, evaluation; resumable.

Every process runs this same function (``python -m mrcnn_jax.train`` on every host). Each reads its
own shard of the training data, the step runs over a mesh of all devices, and process 0 writes logs,
``metrics.jsonl``, TensorBoard events and ``config.json``. Reads ``config.train``: seed, steps,
base_lr, warmup_steps, warmup_factor, decay_steps, momentum, weight_decay, clip_norm,
checkpoint_every, keep, eval_every (> 0: every that many steps and at the end; 0: only at the end;
< 0: never), log_every, init_from (a converted workdir to start from, see init_from.py),
time_budget_s (> 0: fit the run into that many seconds, see budget.py);
``config.data.batch_size`` (global) and ``config.model.freeze_at``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time

import jax
import numpy as np
import tqdm
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from ml_collections import ConfigDict

from mrcnn_jax import errors, workdir_lock
from mrcnn_jax import evaluate as evaluate_lib
from mrcnn_jax.checkpoints import check_same_model, save_config
from mrcnn_jax.data import pipeline as data_lib
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import budget as budget_lib
from mrcnn_jax.train import checkpoint as checkpoint_lib
from mrcnn_jax.train import init_from as init_from_lib
from mrcnn_jax.train import mesh as mesh_lib
from mrcnn_jax.train import optimizer as optimizer_lib
from mrcnn_jax.train import preemption
from mrcnn_jax.train import train_step as train_step_lib
from mrcnn_jax.train.writer import MetricWriter

NOT_LOSSES = ("loss", "grad_norm", "lr", "finite")


class NonFiniteLossError(FloatingPointError):
  """A loss term (or the gradient) became NaN/Inf; the state of that step was not applied or saved."""


def check_finite(step: int, metrics: dict):
  """Raises NonFiniteLossError naming ``step`` and the non-finite loss terms (else the gradient)."""
  if bool(metrics["finite"]):
    return
  values = {name: float(value) for name, value in metrics.items() if name not in NOT_LOSSES}
  bad = {name: value for name, value in values.items() if not math.isfinite(value)}
  bad = bad or {"grad_norm": float(metrics["grad_norm"])}
  raise NonFiniteLossError(f"non-finite training loss at step {step}: "
                           + ", ".join(f"{name}={value}" for name, value in bad.items())
                           + "; stopping without applying or saving this step (the last good "
                           "checkpoint is kept)")



def init_model(config: ConfigDict, mesh) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
  """``(graphdef, params, batch_stats)`` of a new model, initialised in one compiled program, replicated."""
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: build_model(config, seed=config.train.seed)))
  init = jax.jit(lambda: nnx.split(build_model(config, seed=config.train.seed), nnx.Param,
                                   nnx.BatchStat)[1:], out_shardings=mesh_lib.replicated(mesh))
  return (graphdef, *init())


def _check_batch_size(config: ConfigDict, mesh) -> int:
  batch = config.data.batch_size
  if batch % jax.process_count() or batch % mesh.devices.size:
    raise errors.UserError(f"config.data.batch_size={batch} must be divisible by the number of "
                           f"processes ({jax.process_count()}) and of devices ({mesh.devices.size})")
  return batch


def _evaluate(graphdef, state, config: ConfigDict, workdir: str, step: int, writer: MetricWriter) -> dict:
  """COCO evaluation on process 0 with a host-local copy of the weights (the others wait)."""
  if jax.process_index() != 0:
    return {}
  model = nnx.merge(graphdef, *mesh_lib.local_copy(train_step_lib.variables(state)))
  results = evaluate_lib.evaluate(model, config, workdir)
  writer.write(step, {f"eval/{name}": value for name, value in results.items()})
  logging.info("step %d evaluation: %s", step, results)
  return results


def _mean(window: list[dict]) -> dict:
  host = jax.device_get(window)
  return {name: float(np.mean([m[name] for m in host])) for name in host[0] if name != "finite"}


def _budget_start(tc: ConfigDict, workdir: str) -> budget_lib.Plan | None:
  """With a time budget: evaluation at the end only, and the plan of an earlier run of ``workdir``
  (a resumed run keeps its schedule), applied to ``tc``. Returns that plan, or None."""
  if tc.time_budget_s <= 0:
    return None
  tc.eval_every = min(tc.eval_every, 0)
  plan = budget_lib.load(workdir)
  if plan is not None:
    budget_lib.apply(tc, plan)
    logging.info("time budget: keeping the plan of the earlier run, %d steps", plan.steps)
  return plan


def _budget_fit(configured: ConfigDict, tc: ConfigDict, plan: budget_lib.Plan | None, workdir: str,
                step: int, elapsed_s: float, seconds_per_step: float,
                bar: tqdm.tqdm) -> tuple[budget_lib.Plan, bool]:
  """Plans the rest of a budgeted run from process 0's measurements: ``configured`` (the config's own
  ``train``) fitted to the budget left. A new plan (the first, or one that moves the steps by more
  than ``budget_lib.REPLAN_CHANGE``) is applied to ``tc``, saved and told to the user. Returns the
  plan in force and whether it changed the schedule's lengths."""
  if jax.process_count() > 1:                     # one plan for all processes
    seconds_per_step = float(multihost_utils.broadcast_one_to_all(np.array(seconds_per_step)))
  new = budget_lib.fit(configured, elapsed_s, step, seconds_per_step)
  if plan is not None and abs(new.steps - plan.steps) <= budget_lib.REPLAN_CHANGE * plan.steps:
    return plan, False
  changed = new.steps != tc.steps
  budget_lib.apply(tc, new)
  bar.total = new.steps
  eta = time.localtime(time.time() + (new.steps - step) * seconds_per_step)
  if jax.process_index() == 0:
    budget_lib.save(workdir, new)
    bar.write(budget_lib.describe(new, time.strftime("%H:%M:%S", eta)))
  return new, changed


class Stopped(Exception):
  """Training stopped early by ``signal`` (SIGTERM: preemption; SIGINT: Ctrl-C), ``step`` saved."""

  def __init__(self, step: int, signal_number: int):
    super().__init__(f"stopped by {signal.Signals(signal_number).name} at step {step} (saved)")
    self.step, self.signal = step, signal_number


def train(config: ConfigDict, workdir: str) -> tuple[train_step_lib.TrainState, dict]:
  """Trains (or resumes) ``config`` in ``workdir``; returns the final train state and the last
  logged metrics (plus evaluation results).

  Raises NonFiniteLossError on a NaN/Inf loss, errors.UserError on a config that cannot train or a
  workdir another trainer holds, and Stopped after saving a checkpoint when SIGTERM or SIGINT stops
  it early. Fills in ``config.num_classes`` and ``class_names`` from the dataset when they are unset
  (see ``data.pipeline.resolve_classes``).
  """
  with workdir_lock.hold(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
    return _train(config, workdir)


def _train(config: ConfigDict, workdir: str) -> tuple[train_step_lib.TrainState, dict]:
  """``train`` with the workdir held."""
  begin = time.perf_counter()
  tc = config.train
  if tc.steps < 1:
    raise errors.UserError(f"config.train.steps must be at least 1, got {tc.steps}")
  if tc.base_lr <= 0:
    raise errors.UserError(f"config.train.base_lr must be positive, got {tc.base_lr}")
  mesh = mesh_lib.make_mesh()
  batch_size = _check_batch_size(config, mesh)
  data_lib.resolve_classes(config)
  if tc.init_from:
    init_from_lib.take_fields(config, tc.init_from)
  plan = _budget_start(tc, workdir)
  if "://" not in config.data.data_dir:          # config.json is read from other directories too
    config.data.data_dir = os.path.abspath(os.path.expanduser(config.data.data_dir))
  main = jax.process_index() == 0
  check_same_model(config, workdir)             # before anything in the workdir changes
  if main:
    save_config(config, workdir)

  graphdef, params, batch_stats = init_model(config, mesh)
  checkpointer = checkpoint_lib.Checkpointer(workdir, keep=tc.keep)
  if tc.init_from and checkpointer.latest_step() is None:
    imported = init_from_lib.load(tc.init_from, config, {"params": params, "batch_stats": batch_stats})
    params, batch_stats = jax.device_put((imported["params"], imported["batch_stats"]),
                                         mesh_lib.replicated(mesh))
  freeze_at = config.model.freeze_at
  tx, _ = optimizer_lib.make_optimizer(tc, batch_size, freeze_at)
  state = train_step_lib.init_state(params, batch_stats, tx, tc.seed, mesh)
  step_fn = train_step_lib.make_train_step(graphdef, tc, batch_size, mesh, freeze_at)
  lengths = optimizer_lib.schedule_lengths(tc)

  data_iter = data_lib.train_iterator(config, shard_index=jax.process_index(),
                                      shard_count=jax.process_count())
  state = checkpointer.restore(state, data_iter, mesh) or state
  start = int(state["step"])
  if start:
    logging.info("resumed from step %d", start)

  writer = MetricWriter(workdir, enabled=main, start_step=start)
  watcher = preemption.PreemptionWatcher()
  bar = tqdm.tqdm(total=tc.steps, initial=start, disable=not main, unit="step", dynamic_ncols=True)
  summary, window, previous = {}, [], None
  # A budgeted run times steps MEASURE_FROM and MEASURE_TO, plans from that rate, then re-measures
  # every REPLAN_EVERY steps and re-plans until its first lr decay.
  configured = tc.copy_and_resolve_references()
  measure = ([start + budget_lib.MEASURE_FROM, start + budget_lib.MEASURE_TO]
             if tc.time_budget_s > 0 and plan is None else [])
  marks = {}
  tick = time.perf_counter()
  step = start
  try:
    while step < tc.steps:
      step += 1                                   # ``step`` = number of updates done after this one
      batch = mesh_lib.global_batch(next(data_iter), mesh)
      state, metrics = step_fn(state, batch, lengths)
      if previous is not None:                    # checked one step late: keeps the device busy
        check_finite(*previous)
      previous = (step, metrics)
      window.append(metrics)
      bar.update(1)
      if measure and step == measure[0]:
        jax.block_until_ready(metrics)
        marks[measure.pop(0)] = time.perf_counter()
        if not measure:                           # rate over the steps since the last mark
          last = sorted(marks)[-2]
          rate = (marks[step] - marks[last]) / (step - last)
          plan, changed = _budget_fit(configured, tc, plan, workdir, step, marks[step] - begin, rate, bar)
          if changed:                             # the same compiled step, given the new lengths
            lengths = optimizer_lib.schedule_lengths(tc)
            if main:
              save_config(config, workdir)
          if step + budget_lib.REPLAN_EVERY < min(plan.decay_steps, default=plan.steps):
            measure.append(step + budget_lib.REPLAN_EVERY)

      saving = tc.checkpoint_every > 0 and step % tc.checkpoint_every == 0
      stop = watcher.should_stop(step)
      if step % tc.log_every == 0 or saving or stop or step == tc.steps:
        check_finite(step, metrics)
        elapsed, tick = time.perf_counter() - tick, time.perf_counter()
        summary = {**_mean(window), "img_per_sec": batch_size * len(window) / elapsed}
        window = []
        writer.write(step, summary)
        bar.set_postfix(loss=f"{summary['loss']:.3f}", img_s=f"{summary['img_per_sec']:.1f}")
      if saving or stop or step == tc.steps:
        checkpointer.save(step, state, data_iter)
      if stop:
        logging.warning("stopped by %s: saved step %d, exiting", signal.Signals(watcher.signal).name,
                        step)
        raise Stopped(step, int(watcher.signal))
      if tc.eval_every > 0 and step % tc.eval_every == 0 and step != tc.steps:
        summary.update(_evaluate(graphdef, state, config, workdir, step, writer))
        tick = time.perf_counter()                # img/s counts training time only
    watcher.close()                               # Ctrl-C stops the final evaluation at once
    if tc.eval_every >= 0:
      summary.update(_evaluate(graphdef, state, config, workdir, int(state["step"]), writer))
    return state, summary
  finally:
    bar.close()
    checkpointer.wait()
    checkpointer.close()
    writer.close()
    watcher.close()
