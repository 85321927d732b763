"""The Table 2 sweep: arms and their configs, the runner (real training for a few arms, a stand-in
trainer for the rest), resuming and skipping, --only, the report, and the verdict logic."""

import json
import os
import platform
import shutil
import signal
import subprocess
import sys

import jax
import pytest
from flax import nnx

from experiments import keypoints, paper, report, run, sweep, table2
from experiments.sweep import Claim, Gap, Score
from mrcnn_jax import configs
from mrcnn_jax.data import prepare
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import loop

ARMS = sweep.arms(table2.SUBTABLES, table2.base_config())
# Really trained: one arm (each costs a train-step and a detect compile, ~45 s on 2 cores); C4, the head
# that differs most from tests/train's FPN. The C5 head trains in tests/model/test_ablation_switches.py.
REAL = ("r18_c4",)


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  name, _, _ = prepare.prepare_shapes(data_dir, seed=5, num_train=8, num_val=4, image_size=64)
  return data_dir, name


def quick_args(workdir, shapes_data, *extra):
  data_dir, name = shapes_data
  return ["table2", "--workdir", str(workdir), "--quick", "--data_dir", data_dir, "--data_name", name, *extra]


class FakeTrainer:
  """Stands in for loop.train: writes config.json, returns made-up metrics; counts its calls."""

  def __init__(self, preempt=()):
    self.calls, self.preempt = [], set(preempt)

  def __call__(self, config, workdir):
    loop.save_config(config, workdir)
    arm = os.path.basename(os.path.dirname(workdir))
    self.calls.append((arm, config.train.seed))
    if arm in self.preempt:
      self.preempt.discard(arm)
      raise loop.Stopped(1, signal.SIGTERM)
    value = 0.1 + 0.01 * len(arm) + 0.001 * config.train.seed
    return {"step": config.train.steps}, {**{m: value for m in sweep.METRICS}, "img_per_sec": 4.0, "loss": 1.5}


def test_arms_are_deduplicated_and_fpn_base_is_shared():
  names = [arm.name for arm in ARMS]
  assert len(names) == len(set(names)) == 11
  base = next(arm for arm in ARMS if not arm.overrides)
  assert set(base.rows) == {"r18_fpn", "sigmoid", "fcn", "specific"}
  c4 = next(arm for arm in ARMS if arm.name == "r18_c4")
  assert set(c4.rows) == {"r18_c4", "s16_roi_align"}   # pooler=roi_align equals the base: dropped
  assert all(row.paper is None or row.paper in paper.NUMBERS for t in table2.SUBTABLES for row in t.rows)


def test_select_by_subtable_row_or_arm():
  assert [a.name for a in sweep.select(ARMS, table2.SUBTABLES, "b")] == ["r18_fpn", "softmax"]
  assert [a.name for a in sweep.select(ARMS, table2.SUBTABLES, "s16_roi_align,mlp")] == ["r18_c4", "mlp"]
  with pytest.raises(ValueError, match="unknown sub-table or row 'nope'"):
    sweep.select(ARMS, table2.SUBTABLES, "nope")


@pytest.mark.parametrize("arm", ARMS, ids=lambda arm: arm.name)
def test_every_arm_config_traces_training_and_inference(arm, make_batch):
  config = configs.override(configs.override(table2.base_config(2), table2.QUICK), arm.overrides)
  graphdef, state = nnx.split(nnx.eval_shape(lambda: build_model(config)))
  batch = make_batch(config, batch_size=2)
  losses = jax.eval_shape(lambda s, b: nnx.merge(graphdef, s).losses(b, jax.random.key(0)), state, batch)
  assert set(losses) == {"rpn_cls", "rpn_box", "cls", "box", "mask"}
  dets = jax.eval_shape(lambda s, i, z: nnx.merge(graphdef, s).detect(i, z), state, batch["image"],
                        batch["image_size"])
  assert dets["masks"].shape[:2] == (2, config.model.roi.detections_per_image)


def test_sweep_runs_resumes_skips_and_reports(shapes_data, tmp_path, monkeypatch, capsys):
  workdir = tmp_path / "w"
  results = workdir / "results"   # --quick's default
  # Real training (2 steps, tiny model) of the C4 arm.
  assert run.main(quick_args(workdir, shapes_data, "--only", ",".join(REAL))) == 0
  assert sorted(os.listdir(workdir)) == sorted([*REAL, "results"])
  assert sorted(os.listdir(results)) == sorted([*REAL, "results.json", "table2.md", "table2.png"])
  for arm in REAL:
    final = json.load(open(results / arm / "seed0.json"))
    assert final["steps"] == table2.QUICK_STEPS and final["wall_s"] > 0 and final["s_per_step"] > 0
    assert all(0 <= final[m] <= 100 for m in sweep.METRICS if not m.startswith("keypoints/"))  # no keypoint head
    assert final["arm"] == arm and final["seed"] == 0 and final["config"]["model"]["width"] == 8
    assert final["machine"] and final["date"].endswith("UTC") and len(final["load_avg"]) == 3

  # The rest with a stand-in trainer; the finished real arms are skipped. One run is preempted:
  # the sweep stops there, and the next invocation trains it (the real trainer resumes its checkpoint).
  fake = FakeTrainer(preempt=["mlp"])
  monkeypatch.setattr(loop, "train", fake)
  plot = report.plot
  monkeypatch.setattr(report, "plot", lambda *args: None)   # a chart per run: slow, drawn below
  assert run.main(quick_args(workdir, shapes_data)) == 1
  assert fake.calls[-1] == ("mlp", 0) and not (results / "mlp" / "seed0.json").exists()
  out = capsys.readouterr().out
  assert all(f"{arm} seed 0: skip" in out for arm in REAL)
  assert "mlp seed 0: preempted" in out
  assert run.main(quick_args(workdir, shapes_data, "--seeds", "2")) == 0
  trained = [a.name for a in ARMS if a.name not in REAL]
  assert sorted(fake.calls) == sorted([(a, 0) for a in trained] + [("mlp", 0)] + [(a.name, 1) for a in ARMS])
  seeds = [seed for _, seed in fake.calls]
  assert seeds == sorted(seeds)   # seed 0 of every arm before any seed 1
  out = capsys.readouterr().out
  assert "ETA" in out and all(f"{arm} seed 0: skip" in out for arm in REAL)
  assert json.load(open(results / "mlp" / "seed1.json"))["s_per_step"] == pytest.approx(2 / 4.0)

  # Everything finished: a rerun trains nothing.
  fake.calls.clear()
  monkeypatch.setattr(report, "plot", plot)
  assert run.main(quick_args(workdir, shapes_data, "--seeds", "2")) == 0
  assert fake.calls == []
  content = json.load(open(results / "results.json"))
  assert sorted(content["arms"]) == sorted(a.name for a in ARMS)
  assert all(sorted(arm["seeds"]) == ["0", "1"] for arm in content["arms"].values())
  table = (results / "table2.md").read_text()
  assert paper.SOURCE in table and paper.AGNOSTIC_SOURCE in table
  assert table.count("### (") == len(table2.SUBTABLES)
  assert "**yes**" in table or "**no**" in table
  assert f"| `mlp` | 2 | {2 / 4.0:.2f} |" in table
  assert (results / "table2.png").stat().st_size > 10_000

  # Another config in the same workdir is an error, not a silent mix.
  with pytest.raises(ValueError, match="holds a run of another config"):
    run.main(quick_args(workdir, shapes_data, "--steps", "3"))


def test_resume_on_a_fresh_clone_from_the_result_files(shapes_data, tmp_path, monkeypatch, capsys):
  """Only the result files survive (the committed ones): runs that have one are skipped, the others
  train; a result file of another config is an error."""
  fake = FakeTrainer()
  monkeypatch.setattr(loop, "train", fake)
  results = tmp_path / "committed"
  assert run.main(quick_args(tmp_path / "w1", shapes_data, "--only", "b", "--results", str(results))) == 0
  (results / "softmax" / "seed0.json").unlink()
  fake.calls.clear()
  assert run.main(quick_args(tmp_path / "w2", shapes_data, "--only", "b", "--results", str(results))) == 0
  assert fake.calls == [("softmax", 0)]
  assert "r18_fpn seed 0: skip" in capsys.readouterr().out
  with pytest.raises(ValueError, match=r"seed0.json holds a run of another config \(differs in .*train.steps"):
    run.main(quick_args(tmp_path / "w3", shapes_data, "--only", "b", "--results", str(results), "--steps", "3"))


def test_report_only_needs_only_the_result_files(tmp_path, monkeypatch, shapes_data):
  monkeypatch.setattr(loop, "train", FakeTrainer())
  results = tmp_path / "experiments" / "results"
  assert run.main(quick_args(tmp_path / "w", shapes_data, "--only", "b", "--results", str(results))) == 0
  shutil.rmtree(tmp_path / "w")
  (results / "results.json").unlink()
  readme = tmp_path / "experiments" / "README.md"
  readme.write_text(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\nafter\n")
  monkeypatch.setattr(loop, "train", None)     # --report-only must not train
  assert run.main(["table2", "--report-only", "--results", str(results), "--readme", str(readme)]) == 0
  text = readme.read_text()
  assert "old" not in text and text.startswith("intro\n") and text.endswith("after\n")
  assert "| softmax (multinomial) | `softmax` | 1 |" in text and "![AP per arm](results/table2.png)" in text
  assert (results / "table2.png").exists() and (results / "results.json").exists()
  assert "config" not in json.load(open(results / "results.json"))["arms"]["softmax"]["seeds"]["0"]
  # A table kept from an earlier base says what its runs were trained with, not today's overrides.
  old_run = json.load(open(results / "softmax" / "seed0.json"))
  old_run["overrides"] = {**old_run["overrides"], "model.mask.num_convs": 2}
  (results / "softmax" / "seed0.json").write_text(json.dumps(old_run))
  assert run.main(["table2", "--report-only", "--results", str(results)]) == 0
  assert json.load(open(results / "results.json"))["arms"]["softmax"]["overrides"] == old_run["overrides"]


def test_a_run_claimed_by_another_live_process_is_left_to_it(tmp_path):
  run_dir = tmp_path / "r"
  lock = run_dir / run.LOCK
  assert run.claim(str(run_dir)) is None
  assert lock.read_text() == f"{platform.node()} {os.getpid()}"
  assert run.claim(str(run_dir)) is None            # this process's own lock, left behind
  lock.write_text(f"{platform.node()} {os.getppid()}")
  assert run.claim(str(run_dir)) == f"{platform.node()} {os.getppid()}"
  lock.write_text(f"another-host {os.getpid()}")    # liveness is known on this host only
  assert run.claim(str(run_dir)) == f"another-host {os.getpid()}"
  ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                         text=True, check=True).stdout.strip()
  lock.write_text(f"{platform.node()} {ended}")      # its process has ended: taken over
  assert run.claim(str(run_dir)) is None and lock.read_text().endswith(f" {os.getpid()}")
  run.release(str(run_dir))
  assert not lock.exists()


def test_sweep_processes_sharing_a_workdir_skip_each_others_runs(shapes_data, tmp_path, monkeypatch, capsys):
  fake = FakeTrainer()
  monkeypatch.setattr(loop, "train", fake)
  workdir = tmp_path / "w"
  held = workdir / "softmax" / "seed0"
  held.mkdir(parents=True)
  (held / run.LOCK).write_text(f"{platform.node()} {os.getppid()}")   # a live process trains it
  assert run.main(quick_args(workdir, shapes_data, "--only", "b")) == 0
  assert fake.calls == [("r18_fpn", 0)]
  assert f"softmax seed 0: skip (being trained by {platform.node()} {os.getppid()}" in capsys.readouterr().out
  assert not (workdir / "r18_fpn" / "seed0" / run.LOCK).exists()      # released when done
  (held / run.LOCK).unlink()                                          # that process finished
  assert run.main(quick_args(workdir, shapes_data, "--only", "b")) == 0
  assert fake.calls == [("r18_fpn", 0), ("softmax", 0)]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")
def test_machine_says_when_the_run_was_pinned_to_fewer_cores(monkeypatch):
  monkeypatch.setattr(os, "cpu_count", lambda: 2)
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1})
  assert "2 cores, this run pinned to 1;" in run.machine()
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
  assert "2 cores;" in run.machine() and "pinned" not in run.machine()


def test_config_diff_ignores_added_fields_and_the_data_location():
  saved = {"model": {"width": 32, "old": 1}, "data": {"data_dir": "/a", "name": "x"}}
  assert run.config_diff(saved, {"model": {"width": 32, "new": 2}, "data": {"data_dir": "b", "name": "x"}}) == []
  assert run.config_diff(saved, {"model": {"width": 16}, "data": {"name": "y"}}) == ["data.name", "model.width"]


def _stats(**rows):
  """{row: {"segm/AP": (mean, std, n), ...}} from row=(mean, std, n) or row={metric: (mean, std, n)}."""
  return {r: v if isinstance(v, dict) else {"segm/AP": v} for r, v in rows.items()}


def test_verdict_greater():
  claim = Claim("A > B", ">", Score("a"), Score("b"))
  assert report.verdict(claim, _stats(a=(40.0, 0, 1), b=(35.0, 0, 1))) == ("yes", "A > B: +5.0")
  assert report.verdict(claim, _stats(a=(30.0, 0, 1), b=(35.0, 0, 1)))[0] == "no"
  assert report.verdict(claim, _stats(a=(35.04, 0, 1), b=(35.0, 0, 1)))[1] == "A > B: +0.04"
  status, text = report.verdict(claim, _stats(a=(35.5, 1.0, 3), b=(35.0, 0.2, 3)))
  assert status == "yes" and "within 1 std (1.0)" in text
  status, text = report.verdict(claim, _stats(a=(40.0, 0, 1)), paper=_stats(a=(3.0, 0, 1), b=(1.0, 0, 1)))
  assert status == "n/a" and "not run" in text
  status, text = report.verdict(claim, _stats(a=(40.0, 0, 1), b=(35.0, 0, 1)),
                                paper=_stats(a=(3.0, 0, 1), b=(1.0, 0, 1)))
  assert text == "A > B: +5.0 (paper +2.0)"


def test_verdict_similar_needs_seeds():
  claim = Claim("A ≈ B", "≈", Score("a"), Score("b"))
  assert report.verdict(claim, _stats(a=(35.0, 0, 1), b=(35.0, 0, 1)))[0] == "n/a"
  assert report.verdict(claim, _stats(a=(35.0, 1.0, 2), b=(35.8, 0.5, 2)))[0] == "yes"
  assert report.verdict(claim, _stats(a=(35.0, 0.3, 2), b=(36.0, 0.5, 2)))[0] == "no"


def test_verdict_gap_claims():
  claim = Claim("gain larger at AP75", ">", Gap("a", "b", "segm/AP75"), Gap("a", "b", "segm/AP50"))
  stats = {"a": {"segm/AP75": (30.0, 0, 1), "segm/AP50": (50.0, 0, 1)},
           "b": {"segm/AP75": (25.0, 0, 1), "segm/AP50": (48.0, 0, 1)}}
  assert report.verdict(claim, stats) == ("yes", "gain larger at AP75: +5.0 vs +2.0")
  stats["b"]["segm/AP75"] = (29.0, 0, 1)
  assert report.verdict(claim, stats)[0] == "no"


def test_paper_numbers_show_every_directional_claim():
  """Each '>' claim holds on the paper's own numbers wherever the paper has both sides."""
  numbers = report.paper_stats(table2.SUBTABLES)
  checked = 0
  for table in table2.SUBTABLES:
    for claim in table.claims:
      if claim.relation == ">":
        status, text = report.verdict(claim, numbers)
        assert status in ("yes", "n/a"), text
        checked += status == "yes"
  assert checked == 11


def test_row_stats_mean_and_std():
  results = {"arms": {"x": {"rows": ["r1", "r2"], "seeds": {"0": {"segm/AP": 10.0}, "1": {"segm/AP": 14.0}}},
                      "y": {"rows": ["r3"], "seeds": {}}}}
  stats = report.row_stats(results)
  assert set(stats) == {"r1", "r2"}
  mean, std, n = stats["r1"]["segm/AP"]
  assert (mean, n) == (12.0, 2) and std == pytest.approx(2 ** 0.5 * 2)


def test_keypoint_sweep_trains_quick_and_reports_keypoint_ap_beside_table6(tmp_path, monkeypatch):
  """The Table 6 sweep (experiments/keypoints.py): RoIPool vs RoIAlign arms, keypoint AP columns, the
  paper's numbers, its claims, results under the sweep's own folder by default; the RoIPool arm really
  trains with the QUICK settings on a few stick figures, the RoIAlign arm with the stand-in trainer."""
  assert keypoints.RESULTS.endswith(os.path.join("experiments", "results_keypoints"))
  arms = sweep.arms(keypoints.SUBTABLES, keypoints.base_config())
  assert [(a.name, a.overrides) for a in arms] == [("kp_roi_pool", {"model.pooler": "roi_pool"}),
                                                   ("kp_roi_align", {})]
  base = keypoints.base_config(30)
  assert base.model.keypoint.num_keypoints == 11 and not base.model.mask_on
  assert (base.train.warmup_steps, base.train.decay_steps) == (1, (25, 29))
  for table in keypoints.SUBTABLES:
    for claim in table.claims:
      assert report.verdict(claim, report.paper_stats(keypoints.SUBTABLES))[0] == "yes"
  data_dir = str(tmp_path / "tfds")
  name, _, _ = prepare.prepare_keypoints(data_dir, seed=5, num_train=4, num_val=2, image_size=64)
  results = tmp_path / "results"
  args = ["keypoints", "--workdir", str(tmp_path / "w"), "--results", str(results), "--quick",
          "--data_dir", data_dir, "--data_name", name]
  assert run.main([*args, "--only", "kp_roi_pool"]) == 0
  final = json.load(open(results / "kp_roi_pool" / "seed0.json"))
  assert final["steps"] == keypoints.QUICK_STEPS and final["config"]["model"]["pooler"] == "roi_pool"
  assert all(0 <= final[m] <= 100 for m in keypoints.KEYPOINT_COLUMNS)
  monkeypatch.setattr(loop, "train", FakeTrainer())
  monkeypatch.setattr(report, "plot", lambda *args: None)
  assert run.main(args) == 0
  table = (results / "keypoints.md").read_text()
  assert "| row | arm | seeds | keypoint AP | AP50 | AP75 | box AP | paper keypoint AP |" in table
  assert "| RoIAlign | `kp_roi_align` | 1 | 22.0 | 22.0 | 22.0 | 22.0 | 64.2 | 86.6 | 69.7 |" in table


def test_a_sweep_without_prepared_data_is_one_line_exit_2_and_writes_nothing(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "experiments.run", "table2", "--workdir", str(tmp_path / "w"),
                         "--quick", "--data_dir", str(tmp_path / "no-data"), "--results", str(tmp_path / "r")],
                        capture_output=True, text=True, timeout=300, check=False,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        env={**os.environ, "JAX_PLATFORMS": "cpu", "MRCNN_JAX_COMPILATION_CACHE": "off"})
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.splitlines()[-1].startswith("error: config.data.name='mrcnn_shapes': no prepared dataset in")
  assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()
