"""Runs a sweep's arms and writes its report.

    python -m experiments.run table2 --workdir W [--seeds N] [--steps S] [--only a,b,r18_c4,...]
        [--quick] [--data_dir D] [--data_name NAME] [--config.x.y=value ...] [--report-only]
        [--readme experiments/README.md]

Each arm (a distinct config of the sweep, see experiments/sweep.py) and seed k trains in
W/<arm>/seed<k> with ``mrcnn_jax.train.loop.train`` (config.train.seed = k), in this process, one
after the other; an interrupted run resumes from its last checkpoint, and a run is finished (and
skipped) once W/<arm>/seed<k>/final_metrics.json exists. A workdir that holds a different config
is an error, finished or not. After the runs, W/results.json, W/table2.md and W/table2.png are
rewritten from every finished run under W (also those of arms outside --only); --report-only does
only that. --readme also writes the table into that file's RESULTS section and copies the PNG
beside it. Use JAX_PLATFORMS=cpu on a machine without an accelerator.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

import jax

from experiments import report, sweep
from mrcnn_jax import configs

FINAL = "final_metrics.json"
WALL = "wall.json"


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


def check_same_config(config, workdir: str):
  """Raises ValueError if ``workdir`` already trained a config other than ``config``."""
  saved = _read_json(os.path.join(workdir, "config.json"))
  if saved is None:
    return
  wanted = json.loads(config.to_json_best_effort())

  def diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
      return [d for k in sorted(set(a) | set(b)) for d in diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]
  changed = diff(saved, wanted)
  if changed:
    raise ValueError(f"{workdir} holds a run of another config (differs in {', '.join(changed)}); "
                     "use a new --workdir or remove that directory")


def train_arm(config, workdir: str) -> dict | None:
  """Trains (or resumes) and evaluates ``config`` in ``workdir``; writes and returns its final
  metrics, or None if the run was preempted (SIGTERM: checkpoint saved, rerun to resume)."""
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
  final.update(steps=int(state["step"]), wall_s=wall["wall_s"], seed=int(config.train.seed),
               data=f"{config.data.name} ({config.data.eval_split} split)")
  _write_json(os.path.join(workdir, FINAL), final)
  return final


def collect(workdir: str, arm_list) -> dict:
  """results.json's content: every finished seed of every arm under ``workdir``."""
  arms = {}
  for arm in arm_list:
    arm_dir = os.path.join(workdir, arm.name)
    seeds = sorted((d for d in (os.listdir(arm_dir) if os.path.isdir(arm_dir) else [])
                    if d.startswith("seed") and os.path.exists(os.path.join(arm_dir, d, FINAL))),
                   key=lambda d: int(d[4:]))
    arms[arm.name] = {"rows": list(arm.rows), "overrides": arm.overrides,
                      "seeds": {d[4:]: _read_json(os.path.join(arm_dir, d, FINAL)) for d in seeds}}
  return {"arms": arms}


def _eta(workdir: str, todo, durations) -> str:
  """Time left for the unfinished runs of ``todo``: per arm, the wall time of a finished seed of
  it, else the mean duration of this session's runs ("?" before the first)."""
  mean = sum(durations) / len(durations) if durations else None
  total = 0.0
  for arm, seed in todo:
    if os.path.exists(os.path.join(workdir, arm.name, f"seed{seed}", FINAL)):
      continue
    done = collect(workdir, [arm])["arms"][arm.name]["seeds"].values()
    estimate = next((run["wall_s"] for run in done if "wall_s" in run), mean)
    if estimate is None:
      return "?"
    total += estimate
  return _hms(total)


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("sweep", help="sweep module under experiments/ (table2)")
  parser.add_argument("--workdir", required=True)
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
  extra = {}
  for item in rest:
    key, sep, value = item.partition("=")
    if not (key.startswith("--config.") and sep):
      parser.error(f"unrecognized argument {item!r} (extra overrides look like --config.train.base_lr=0.01)")
    extra[key[len("--config."):]] = sweep.parse_value(value)
  return args, extra


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
  workdir = args.workdir

  if not args.report_only:
    todo = [(arm, seed) for arm in selected for seed in range(seeds)]
    print(f"{args.sweep}: {len(todo)} runs ({len(selected)} arms x {seeds} seeds), {steps} steps each, "
          f"data {base.data.name} in {base.data.data_dir}", flush=True)
    began, durations = time.perf_counter(), []
    for i, (arm, seed) in enumerate(todo, 1):
      run_dir = os.path.join(workdir, arm.name, f"seed{seed}")
      tag = f"[{i}/{len(todo)}] {arm.name} seed {seed}"
      config = configs.override(base.copy_and_resolve_references(), arm.overrides)
      config.train.seed = seed
      check_same_config(config, run_dir)
      if os.path.exists(os.path.join(run_dir, FINAL)):
        print(f"{tag}: skip (finished: {os.path.join(run_dir, FINAL)})", flush=True)
        continue
      eta = _eta(workdir, todo[i - 1:], durations)
      print(f"{tag}: train (rows {', '.join(arm.rows)}; overrides {arm.overrides or 'none'}); "
            f"elapsed {_hms(time.perf_counter() - began)}, ETA {eta}", flush=True)
      tick = time.perf_counter()
      final = train_arm(config, run_dir)
      durations.append(time.perf_counter() - tick)
      if final is None:
        print(f"{tag}: preempted, checkpoint saved; rerun the same command to resume", flush=True)
        return 1
      print(f"{tag}: done in {_hms(durations[-1])}: mask AP {final.get('segm/AP', float('nan')):.1f}, "
            f"box AP {final.get('bbox/AP', float('nan')):.1f}", flush=True)

  results = {"sweep": args.sweep, **collect(workdir, arm_list)}
  _write_json(os.path.join(workdir, "results.json"), results)
  table_md = report.markdown(module.SUBTABLES, results, report.header(results))
  with open(os.path.join(workdir, f"{args.sweep}.md"), "w") as f:
    f.write(table_md)
  png = os.path.join(workdir, f"{args.sweep}.png")
  report.plot(module.SUBTABLES, results, png)
  if args.readme:
    report.update_readme(args.readme, table_md, png)
  print(f"wrote {os.path.join(workdir, 'results.json')}, {args.sweep}.md and {args.sweep}.png", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
