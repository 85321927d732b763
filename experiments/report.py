"""From per-arm results to the sweep's report: statistics over seeds, the paper's claims checked
against our numbers, a markdown table per sub-table, a bar chart, the README's RESULTS section.

``results`` (results.json) is {"arms": {arm: {"rows": [...], "overrides": {...}, "seeds": {seed:
{"segm/AP": points, ..., "steps": int, "wall_s": float, "s_per_step": float, "data": str, "date":
str, "machine": str, "load_avg": [1, 5, 15 min]}}}}, ...} (experiments/run.py:record); AP values in
points (x100) like the paper's. ``stats`` is {row id: {metric: (mean, std, n)}} (std over seeds,
ddof 1; 0 for one seed).
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from experiments import paper as paper_lib
from experiments.sweep import METRICS, Claim, Gap, Score, rows_by_id

README_BEGIN = "<!-- RESULTS:BEGIN (written by python -m experiments.run ... --readme) -->"
README_END = "<!-- RESULTS:END -->"
NOT_RUN = "—"
COLUMNS = {"segm/AP": "mask AP", "segm/AP50": "AP50", "segm/AP75": "AP75", "bbox/AP": "box AP",
           "keypoints/AP": "keypoint AP", "keypoints/AP50": "AP50", "keypoints/AP75": "AP75"}
PAPER_COLUMNS = {m: f"paper {label}" for m, label in COLUMNS.items()}


def row_stats(results: dict) -> dict:
  """{row id: {metric: (mean, std, n)}} for every row of every arm with at least one finished seed."""
  stats = {}
  for arm in results["arms"].values():
    runs = list(arm["seeds"].values())
    if not runs:
      continue
    per_metric = {}
    for metric in METRICS:
      values = np.array([run[metric] for run in runs if metric in run], np.float64)
      if values.size:
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        per_metric[metric] = (float(values.mean()), std, int(values.size))
    for row in arm["rows"]:
      stats[row] = per_metric
  return stats


def paper_stats(subtables) -> dict:
  """The paper's numbers in ``row_stats`` form (std 0, n 1) for rows that have a paper key."""
  return {row.id: {m: (v, 0.0, 1) for m, v in paper_lib.NUMBERS[row.paper].items()}
          for row in rows_by_id(subtables).values() if row.paper}


def _value(term: Score | Gap, stats: dict) -> float | None:
  if isinstance(term, Gap):
    better = _value(Score(term.better, term.metric), stats)
    worse = _value(Score(term.worse, term.metric), stats)
    return None if better is None or worse is None else better - worse
  entry = stats.get(term.row, {}).get(term.metric)
  return None if entry is None else entry[0]


def _signed(value: float) -> str:
  """+1.2; two decimals where one would hide the sign (+0.04, not +0.0)."""
  return f"{value:+.2f}" if 0 < abs(value) < 0.05 else f"{value:+.1f}"


def _compared(claim: Claim, stats: dict) -> str:
  lhs, rhs = _value(claim.lhs, stats), _value(claim.rhs, stats)
  if isinstance(claim.lhs, Gap):
    return f"{_signed(lhs)} vs {_signed(rhs)}"
  return _signed(lhs - rhs)


def verdict(claim: Claim, stats: dict, paper: dict | None = None) -> tuple[str, str]:
  """Whether our numbers (``stats``) show the paper's finding ``claim``: ("yes" | "no" | "n/a", text).

  ">": yes when lhs > rhs; for two Scores whose difference is within one std (the larger of the two,
  at least 2 seeds each) the text says so. "≈": yes when |lhs - rhs| <= the larger std; n/a with
  fewer than 2 seeds. ``paper`` (``paper_stats``) adds the paper's difference where it has both sides.
  """
  lhs, rhs = _value(claim.lhs, stats), _value(claim.rhs, stats)
  if lhs is None or rhs is None:
    return "n/a", f"{claim.text}: not run"
  text = f"{claim.text}: {_compared(claim, stats)}"
  if paper is not None and None not in (_value(claim.lhs, paper), _value(claim.rhs, paper)):
    text += f" (paper {_compared(claim, paper)})"
  noise = None
  if isinstance(claim.lhs, Score) and isinstance(claim.rhs, Score):
    _, std_l, n_l = stats[claim.lhs.row][claim.lhs.metric]
    _, std_r, n_r = stats[claim.rhs.row][claim.rhs.metric]
    noise = max(std_l, std_r) if min(n_l, n_r) >= 2 else None
  if claim.relation == "≈":
    if noise is None:
      return "n/a", text + ", needs >= 2 seeds"
    return ("yes" if abs(lhs - rhs) <= noise else "no"), text + f", 1 std = {noise:.1f}"
  if noise is not None and abs(lhs - rhs) <= noise:
    text += f", within 1 std ({noise:.1f})"
  return ("yes" if lhs > rhs else "no"), text


def verdicts(subtables, stats: dict) -> dict:
  """{row id: ["yes: <claim text>", ...]} for every claim, in the row that shows it."""
  paper = paper_stats(subtables)
  out = {}
  for table in subtables:
    for claim in table.claims:
      status, text = verdict(claim, stats, paper)
      out.setdefault(claim.shown_in, []).append(f"**{status}**: {text}")
  return out


def header(results: dict) -> str:
  """What the numbers are: data, steps per arm, seeds, total wall time, when and on what."""
  runs = [run for arm in results["arms"].values() for run in arm["seeds"].values()]
  steps = sorted({run["steps"] for run in runs})
  wall = sum(run.get("wall_s", 0.0) for run in runs)
  data = sorted({run.get("data", "?") for run in runs})
  dates = sorted(run["date"] for run in runs if "date" in run)
  when = "" if not dates else f", {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
  machines = sorted({run["machine"] for run in runs if "machine" in run})
  on = f" on {'; '.join(machines)}" if machines else ""
  return (f"Ours: COCO AP (points) on {', '.join(data) or '?'}, "
          f"mean ± std over seeds (no std with one seed); {len(runs)} finished runs of "
          f"{', '.join(map(str, steps)) or '?'} training steps, {wall / 3600:.1f} h of training and "
          f"evaluation in all{when}{on}. The paper's numbers are COCO minival (ResNet-50/101, 1x "
          "schedule): compare directions and gaps, not values.\n")


def cost(results: dict) -> str:
  """A markdown table of what each arm cost: runs, training s/step, wall minutes per run, load."""
  lines = ["| arm | runs | s/step | wall min per run | load average (1 min) at the end |",
           "|---|---:|---:|---:|---|"]
  total = 0.0
  for name, arm in results["arms"].items():
    runs = list(arm["seeds"].values())
    if not runs:
      continue
    total += sum(run.get("wall_s", 0.0) for run in runs)
    per_step = [run["s_per_step"] for run in runs if "s_per_step" in run]
    wall_min = np.mean([run.get("wall_s", np.nan) for run in runs]) / 60
    loads = ", ".join(f"{run['load_avg'][0]:.1f}" for run in runs if "load_avg" in run)
    lines.append(f"| `{name}` | {len(runs)} | {np.mean(per_step) if per_step else np.nan:.2f} | "
                 f"{wall_min:.1f} | {loads} |")
  lines.append(f"\nTotal: {total / 60:.0f} min of wall time for the finished runs.\n")
  return "\n".join(lines)


def _cell(entry) -> str:
  if entry is None:
    return NOT_RUN
  mean, std, n = entry
  return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"


def _paper_cell(row, metric: str) -> str:
  value = paper_lib.NUMBERS.get(row.paper, {}).get(metric) if row.paper else None
  return NOT_RUN if value is None else f"{value:.1f}"


def markdown(subtables, results: dict, header: str = "") -> str:
  """The report: one table per sub-table, ours (mean ± std over seeds) beside the paper's numbers."""
  stats, arm_of = row_stats(results), {r: a for a, arm in results["arms"].items() for r in arm["rows"]}
  claims = verdicts(subtables, stats)
  lines = [header] if header else []
  for table in subtables:
    paper_metrics = list(table.metrics[:3]) + [  # the score's three, and the rest where the paper has them
        m for m in table.metrics[3:] if any(m in paper_lib.NUMBERS.get(r.paper, {}) for r in table.rows)]
    lines += [f"### ({table.key}) {table.title}", "",
              f"Paper: {table.source}. {table.note}".rstrip(), "",
              "| row | arm | seeds | " + " | ".join(COLUMNS[m] for m in table.metrics) + " | "
              + " | ".join(PAPER_COLUMNS[m] for m in paper_metrics)
              + " | agrees with the paper's direction? |",
              "|" + "---|" * (4 + len(table.metrics) + len(paper_metrics))]
    for row in table.rows:
      ours = stats.get(row.id, {})
      n = ours.get(table.metrics[0], (0, 0, 0))[2]
      cells = [row.label, f"`{arm_of.get(row.id, row.id)}`", str(n)]
      cells += [_cell(ours.get(m)) for m in table.metrics]
      cells += [_paper_cell(row, m) for m in paper_metrics]
      cells.append("<br>".join(claims.get(row.id, [])) or "")
      lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
  lines += ["### Cost of the finished runs", "", cost(results)]
  return "\n".join(lines)


def plot(subtables, results: dict, path: str):
  """Grouped bars per sub-table: our score (its first metric: mean, std error bars) beside the
  paper's, per row."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  stats = row_stats(results)
  cols = min(3, len(subtables))
  rows = math.ceil(len(subtables) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
  for ax, table in zip(axes.flat, subtables):
    x = np.arange(len(table.rows))
    metric = table.metrics[0]
    ours = [stats.get(r.id, {}).get(metric, (np.nan, 0.0, 0)) for r in table.rows]
    theirs = [paper_lib.NUMBERS.get(r.paper, {}).get(metric, np.nan) if r.paper else np.nan
              for r in table.rows]
    ax.bar(x - 0.2, [o[0] for o in ours], 0.4, yerr=[o[1] for o in ours], capsize=4, label="ours (synthetic)")
    ax.bar(x + 0.2, theirs, 0.4, color="0.75", hatch="//", label="paper (COCO)")
    ax.set_xticks(x, [r.label for r in table.rows], rotation=20, ha="right", fontsize=8)
    ax.set_title(f"({table.key}) {table.title}", fontsize=9)
    ax.set_ylabel(COLUMNS[metric])
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(subtables):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def update_readme(readme: str, table_md: str, png: str | None = None):
  """Replaces the RESULTS section of ``readme`` (between its markers) by ``table_md`` and a link to
  ``png`` (relative to the readme)."""
  with open(readme) as f:
    text = f.read()
  pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
  if not pattern.search(text):
    raise ValueError(f"{readme} has no RESULTS section ({README_BEGIN} ... {README_END})")
  body = table_md
  if png:
    link = os.path.relpath(os.path.abspath(png), os.path.dirname(os.path.abspath(readme)))
    body += f"\n![AP per arm]({link})\n"
  text = pattern.sub(lambda _: f"{README_BEGIN}\n{body}\n{README_END}", text)
  with open(readme, "w") as f:
    f.write(text)
