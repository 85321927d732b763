"""Runs a sweep's arms and writes its report.

    python -m experiments.run table2 --workdir W [--results R] [--seeds N] [--steps S]
        [--only a,b,r18_c4,...] [--quick] [--data_dir D] [--data_name NAME] [--config.x.y=value ...]
        [--report-only] [--readme experiments/README.md]

Each arm (a distinct config of the sweep, see experiments/sweep.py) and seed k trains in
W/<arm>/seed<k> with ``mrcnn_jax.train.loop.train`` (config.train.seed = k), in this process, one
after the other, seed 0 of every arm before any seed 1. A finished run writes R/<arm>/seed<k>.json
(R = the sweep module's RESULTS, else experiments/results; W/results with --quick): its metrics,
cost, date, machine and config. That file is what marks the run done: runs that have one are skipped, so a sweep resumes
from the committed results of a fresh clone (and from W's checkpoints for the run in progress). A
result or workdir that holds a different config is an error. Sweep processes may share W, say one
per core of a CPU whose convolutions scale badly across threads (``taskset -c 0 python -m
experiments.run ... & taskset -c 1 python -m experiments.run ...``, the same arguments): each skips
the runs another one is training (W/<arm>/seed<k>/sweep.lock). After every run R/results.json,
R/<sweep>.md and R/<sweep>.png are rewritten from all the result files under R; --report-only does
only that (no workdir needed). --readme also writes the table into that file's RESULTS section.
Use JAX_PLATFORMS=cpu on a machine without an accelerator.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import sys
import time

import jax

from experiments import report, sweep
from mrcnn_jax import compile_cache, configs, errors
from mrcnn_jax.data import pipeline

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WALL = "wall.json"
LOCK = "sweep.lock"  # in a run's workdir while a sweep process trains it: "HOST PID"
LOCAL_FIELDS = ("data.data_dir",)  # where the data lies, not what it is: ignored when comparing configs
# Filled in from the dataset (data.name, compared) when training starts, so empty in the sweep's config
# and set in the run's config.json: ignored when comparing configs too.
FROM_DATA = ("data.keypoint_names", "data.keypoint_flip_map", "data.keypoint_sigmas", "data.keypoint_skeleton")


def _hms(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _read_json(path: str, default=None):
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=2)
  os.replace(path + ".tmp", path)


def config_diff(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
  """Dotted fields whose values differ; fields present on one side only (a field added to the
  package since), LOCAL_FIELDS and FROM_DATA are ignored."""
  if isinstance(saved, dict) and isinstance(wanted, dict):
    return [d for k in sorted(set(saved) & set(wanted))
            for d in config_diff(saved[k], wanted[k], f"{prefix}{k}.")]
  field = prefix.rstrip(".")
  return [] if saved == wanted or field in LOCAL_FIELDS + FROM_DATA else [field]


def check_same_config(config, saved: dict | None, where: str):
  """Raises ValueError if ``saved`` (a config dict read from ``where``) differs from ``config``."""
  if saved is None:
    return
  changed = config_diff(saved, json.loads(config.to_json_best_effort()))
  if changed:
    raise ValueError(f"{where} holds a run of another config (differs in {', '.join(changed)}); "
                     "use a new --workdir / --results or remove it")


def machine() -> str:
  """The CPU model, its core count and how many of them this process may run on (``taskset``), and
  JAX's backend and device."""
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
  cores = f"{os.cpu_count()} cores"
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  if usable != os.cpu_count():
    cores += f", this run pinned to {usable}"
  device = jax.devices()[0]
  return f"{cpu}, {cores}; JAX {jax.__version__} on {device.platform} ({device.device_kind})"


def claim(run_dir: str) -> str | None:
  """Takes the run in ``run_dir`` for this process, so that sweep processes sharing a workdir never
  train the same run: None once its LOCK file names this process, else who holds it ("HOST PID").
  A lock left by a process that has ended on this host is taken over."""
  os.makedirs(run_dir, exist_ok=True)
  lock = os.path.join(run_dir, LOCK)
  while True:
    try:
      with open(lock, "x") as f:
        f.write(f"{platform.node()} {os.getpid()}")
      return None
    except FileExistsError:
      with open(lock) as f:
        holder = f.read().split()
      if not _left_behind(holder):
        return " ".join(holder) or "another process"
      with contextlib.suppress(FileNotFoundError):
        os.remove(lock)


def release(run_dir: str) -> None:
  """Removes this process's lock on ``run_dir``."""
  with contextlib.suppress(FileNotFoundError):
    os.remove(os.path.join(run_dir, LOCK))


def _left_behind(holder: list[str]) -> bool:
  """Whether a lock's ``holder`` [host, pid] is this process or one that has ended on this host."""
  if len(holder) != 2 or holder[0] != platform.node() or not holder[1].isdigit():
    return False
  pid = int(holder[1])
  if pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)  # signal 0: only asks whether the process exists
  except ProcessLookupError:
    return True
  except PermissionError:  # it exists, another user's
    pass
  return False


def train_arm(config, workdir: str) -> dict | None:
  """Trains (or resumes) and evaluates ``config`` in ``workdir``; returns its final metrics (AP
  points) and cost, or None if the run was preempted (SIGTERM: checkpoint saved, rerun to resume)."""
  from mrcnn_jax.train import loop  # pylint: disable=g-import-not-at-top  (heavy; --report-only needs none)
  wall = _read_json(os.path.join(workdir, WALL), {"wall_s": 0.0})
  start = time.perf_counter()
  try:
    state, summary = loop.train(config, workdir)
  except loop.Stopped:
    return None
  finally:
    wall["wall_s"] += time.perf_counter() - start
    _write_json(os.path.join(workdir, WALL), wall)
    jax.clear_caches()
  final = {m: 100.0 * summary[m] for m in sweep.METRICS if m in summary}
  final.update(steps=int(state["step"]), wall_s=wall["wall_s"])
  if "img_per_sec" in summary:  # the training loop's rate over its last log window
    final["s_per_step"] = config.data.batch_size / summary["img_per_sec"]
  if "loss" in summary:
    final["train_loss"] = summary["loss"]
  return final


def result_path(results: str, arm: str, seed: int) -> str:
  return os.path.join(results, arm, f"seed{seed}.json")


def record(final: dict, config, arm) -> dict:
  """A result file's content: ``final`` plus what the run was, where and when."""
  return {**final, "seed": int(config.train.seed), "arm": arm.name, "overrides": arm.overrides,
          "data": f"{config.data.name} ({config.data.eval_split} split)",
          "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
          "machine": machine(), "load_avg": [round(x, 2) for x in os.getloadavg()],
          "config": json.loads(config.to_json_best_effort())}


def collect(results: str, arm_list) -> dict:
  """results.json's content: every result file of every arm under ``results``, with the overrides
  its runs were trained with (the sweep's own, before any has finished)."""
  arms = {}
  for arm in arm_list:
    arm_dir = os.path.join(results, arm.name)
    names = [n for n in (os.listdir(arm_dir) if os.path.isdir(arm_dir) else [])
             if n.startswith("seed") and n.endswith(".json")]
    seeds = sorted((n[len("seed"):-len(".json")] for n in names), key=int)
    runs = {seed: _read_json(os.path.join(arm_dir, f"seed{seed}.json")) for seed in seeds}
    trained_with = next((run["overrides"] for run in runs.values() if "overrides" in run), arm.overrides)
    arms[arm.name] = {"rows": list(arm.rows), "overrides": trained_with,
                      "seeds": {seed: {k: v for k, v in run.items() if k != "config"}
                                for seed, run in runs.items()}}
  return {"arms": arms}


def write_report(name: str, subtables, arm_list, results: str, readme: str | None = None):
  """Rewrites R/results.json, R/<name>.md and R/<name>.png (and ``readme``'s RESULTS section)."""
  content = {"sweep": name, **collect(results, arm_list)}
  _write_json(os.path.join(results, "results.json"), content)
  table_md = report.markdown(subtables, content, report.header(content))
  with open(os.path.join(results, f"{name}.md"), "w") as f:
    f.write(table_md)
  png = os.path.join(results, f"{name}.png")
  report.plot(subtables, content, png)
  if readme:
    report.update_readme(readme, table_md, png)
  print(f"wrote {os.path.join(results, 'results.json')}, {name}.md and {name}.png", flush=True)


def _eta(results: str, todo, durations) -> str:
  """Time left for the unfinished runs of ``todo``: per arm, the wall time of a finished seed of
  it, else the mean duration of this session's runs ("?" before the first)."""
  mean = sum(durations) / len(durations) if durations else None
  total = 0.0
  for arm, seed in todo:
    if os.path.exists(result_path(results, arm.name, seed)):
      continue
    done = collect(results, [arm])["arms"][arm.name]["seeds"].values()
    estimate = next((run["wall_s"] for run in done if "wall_s" in run), mean)
    if estimate is None:
      return "?"
    total += estimate
  return _hms(total)


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("sweep", help="sweep module under experiments/ (table2, keypoints)")
  parser.add_argument("--workdir", default=None, help="the trainers' workdirs (needed unless --report-only)")
  parser.add_argument("--results", default=None,
                      help="result files and report (default: the sweep's RESULTS, else "
                           "experiments/results; W/results with --quick)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="seeds 0..N-1 per arm (default: the sweep's DEFAULT_SEEDS, 1 with --quick)")
  parser.add_argument("--steps", type=int, default=None,
                      help="steps per arm (default: the sweep's DEFAULT_STEPS, QUICK_STEPS with --quick)")
  parser.add_argument("--only", default=None, help="comma-separated sub-table keys, row ids or arm names")
  parser.add_argument("--quick", action="store_true", help="tiny model, a few steps: a smoke test")
  parser.add_argument("--data_dir", default=None, help="overrides config.data.data_dir")
  parser.add_argument("--data_name", default=None, help="overrides config.data.name")
  parser.add_argument("--report-only", dest="report_only", action="store_true",
                      help="no training: rewrite results.json, the table and the PNG from finished runs")
  parser.add_argument("--readme", default=None, help="also write the table into this file's RESULTS section")
  args, rest = parser.parse_known_args(argv)
  if args.workdir is None and (not args.report_only or args.quick and not args.results):
    parser.error("--workdir is required (with --report-only too when --quick has no --results)")
  if args.results is None and args.quick:
    args.results = os.path.join(args.workdir, "results")
  try:
    return args, configs.parse_overrides(rest)
  except ValueError as e:
    parser.error(str(e))


def main(argv=None):
  args, extra = parse_args(sys.argv[1:] if argv is None else argv)
  try:
    module = importlib.import_module(f"experiments.{args.sweep}")
  except ModuleNotFoundError as e:
    raise SystemExit(f"unknown sweep {args.sweep!r}: expected a module experiments/{args.sweep}.py") from e
  if not hasattr(module, "SUBTABLES"):
    raise SystemExit(f"experiments/{args.sweep}.py declares no SUBTABLES: not a sweep")
  steps = args.steps or (module.QUICK_STEPS if args.quick else module.DEFAULT_STEPS)
  seeds = args.seeds or (1 if args.quick else module.DEFAULT_SEEDS)
  base = module.base_config(steps)
  if args.quick:
    configs.override(base, module.QUICK)
  data = {k: v for k, v in (("data.data_dir", args.data_dir), ("data.name", args.data_name)) if v}
  configs.override(base, {**data, **extra})
  arm_list = sweep.arms(module.SUBTABLES, module.base_config())
  selected = sweep.select(arm_list, module.SUBTABLES, args.only)
  results = args.results or getattr(module, "RESULTS", RESULTS)

  score = module.SUBTABLES[0].metrics[0]  # the sweep's score, printed per run
  if not args.report_only:
    pipeline.resolve_classes(base.copy_and_resolve_references())  # data prepared? before any run folder
    todo = [(arm, seed) for seed in range(seeds) for arm in selected]  # a one-seed table first
    print(f"{args.sweep}: {len(todo)} runs ({len(selected)} arms x {seeds} seeds), {steps} steps each, "
          f"data {base.data.name} in {base.data.data_dir}; results in {results}", flush=True)
    began, durations = time.perf_counter(), []
    for i, (arm, seed) in enumerate(todo, 1):
      run_dir = os.path.join(args.workdir, arm.name, f"seed{seed}")
      path = result_path(results, arm.name, seed)
      tag = f"[{i}/{len(todo)}] {arm.name} seed {seed}"
      config = configs.override(base.copy_and_resolve_references(), arm.overrides)
      config.train.seed = seed
      check_same_config(config, _read_json(os.path.join(run_dir, "config.json")), run_dir)
      if os.path.exists(path):
        check_same_config(config, _read_json(path)["config"], path)
        print(f"{tag}: skip (finished: {path})", flush=True)
        continue
      holder = claim(run_dir)
      if holder:
        print(f"{tag}: skip (being trained by {holder}; if no such process runs, remove "
              f"{os.path.join(run_dir, LOCK)})", flush=True)
        continue
      try:
        if os.path.exists(path):  # another sweep process finished it since the check above
          continue
        eta = _eta(results, todo[i - 1:], durations)
        print(f"{tag}: train (rows {', '.join(arm.rows)}; overrides {arm.overrides or 'none'}); "
              f"elapsed {_hms(time.perf_counter() - began)}, ETA {eta}", flush=True)
        tick = time.perf_counter()
        final = train_arm(config, run_dir)
        durations.append(time.perf_counter() - tick)
        if final is None:
          print(f"{tag}: preempted, checkpoint saved; rerun the same command to resume", flush=True)
          return 1
        _write_json(path, record(final, config, arm))
      finally:
        release(run_dir)
      scores = ", ".join(f"{report.COLUMNS[m]} {final.get(m, float('nan')):.1f}" for m in (score, "bbox/AP"))
      print(f"{tag}: done in {_hms(durations[-1])}: {scores}; wrote {path}", flush=True)
      write_report(args.sweep, module.SUBTABLES, arm_list, results)

  write_report(args.sweep, module.SUBTABLES, arm_list, results, args.readme)
  return 0

if __name__ == "__main__":
  compile_cache.enable()
  sys.exit(errors.run_cli(main))
