"""What a sweep is made of: rows (config overrides of one base), sub-tables, the paper's claims.

A sweep module (e.g. experiments/table2.py) declares ``SUBTABLES`` of ``Row``s, each row a dict of
dotted config overrides ({"model.head": "c4", ...}) of the module's ``base_config``. Rows whose
overrides give the same config (after dropping overrides equal to the base's value) are one *arm*,
trained once and shown in every row that uses it; the arm is named after its first row.
``Claim``s are the paper's findings (``lhs > rhs`` or ``lhs ≈ rhs``) that report.py checks our
numbers against.
"""

from __future__ import annotations

import dataclasses

import ml_collections


METRICS = ("segm/AP", "segm/AP50", "segm/AP75", "bbox/AP", "bbox/AP50", "bbox/AP75",
           "keypoints/AP", "keypoints/AP50", "keypoints/AP75")
MASK_COLUMNS = ("segm/AP", "segm/AP50", "segm/AP75", "bbox/AP")  # a sub-table's columns: the first is its score


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of a sub-table: ``id`` (unique in the sweep), ``label`` shown, ``overrides`` of the
  base config, ``paper``: the key of the paper's numbers in experiments/paper.py (or None)."""
  id: str
  label: str
  overrides: dict = dataclasses.field(default_factory=dict)
  paper: str | None = None


@dataclasses.dataclass(frozen=True)
class Score:
  """Mean over seeds of a row's ``metric`` (AP points)."""
  row: str
  metric: str = "segm/AP"


@dataclasses.dataclass(frozen=True)
class Gap:
  """Score(better, metric) - Score(worse, metric)."""
  better: str
  worse: str
  metric: str = "segm/AP"


@dataclasses.dataclass(frozen=True)
class Claim:
  """The paper's finding ``lhs relation rhs``; relation ">" or "≈" (equal within one std over seeds).
  The verdict is shown in row ``row`` (default: the row of ``lhs``)."""
  text: str
  relation: str
  lhs: Score | Gap
  rhs: Score | Gap
  row: str | None = None

  def __post_init__(self):
    if self.relation not in (">", "≈"):
      raise ValueError(f"Claim.relation must be '>' or '≈', got {self.relation!r}")
    if self.relation == "≈" and not (isinstance(self.lhs, Score) and isinstance(self.rhs, Score)):
      raise ValueError("a '≈' claim compares two Scores")

  @property
  def shown_in(self) -> str:
    return self.row or (self.lhs.row if isinstance(self.lhs, Score) else self.lhs.better)


@dataclasses.dataclass(frozen=True)
class SubTable:
  key: str
  title: str
  rows: tuple[Row, ...]
  claims: tuple[Claim, ...] = ()
  source: str = ""
  note: str = ""
  metrics: tuple[str, ...] = MASK_COLUMNS  # columns shown (METRICS); the first is plotted


@dataclasses.dataclass(frozen=True)
class Arm:
  name: str
  overrides: dict
  rows: tuple[str, ...]


def scaled(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
  """``config`` trained for ``steps``: warmup and lr decays keep their share of its steps; checkpoints
  at most every 250 steps; evaluated once, at the end."""
  t = config.train
  t.warmup_steps = max(1, round(steps * t.warmup_steps / t.steps))
  t.decay_steps = tuple(round(steps * s / t.steps) for s in t.decay_steps)
  t.steps = steps
  t.checkpoint_every = min(250, steps)
  t.eval_every = 0
  return config


def _get(config, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _canon(value):
  return tuple(value) if isinstance(value, (list, tuple)) else value


def effective_overrides(base: ml_collections.ConfigDict, overrides: dict) -> dict:
  """``overrides`` without the entries that equal the base's value, keys sorted (the arm's identity)."""
  return {k: overrides[k] for k in sorted(overrides) if _canon(_get(base, k)) != _canon(overrides[k])}


def rows_by_id(subtables) -> dict:
  rows = {}
  for table in subtables:
    for row in table.rows:
      if row.id in rows:
        raise ValueError(f"row id {row.id!r} appears twice")
      rows[row.id] = row
  return rows


def arms(subtables, base: ml_collections.ConfigDict) -> list[Arm]:
  """The distinct configs of the sweep, in order of first appearance, each with the rows it serves."""
  by_key: dict[str, Arm] = {}
  for row in rows_by_id(subtables).values():
    overrides = effective_overrides(base, row.overrides)
    key = repr([(k, _canon(v)) for k, v in overrides.items()])
    arm = by_key.get(key)
    by_key[key] = (Arm(row.id, overrides, (row.id,)) if arm is None
                   else dataclasses.replace(arm, rows=arm.rows + (row.id,)))
  return list(by_key.values())


def arm_of_row(arm_list) -> dict:
  return {row: arm.name for arm in arm_list for row in arm.rows}


def select(arm_list, subtables, only: str | None) -> list[Arm]:
  """Arms named by ``only`` (comma-separated sub-table keys, row ids or arm names); all if None."""
  if not only:
    return list(arm_list)
  row_arm = arm_of_row(arm_list)
  wanted = set()
  for token in (t.strip() for t in only.split(",") if t.strip()):
    table = next((t for t in subtables if t.key == token), None)
    if table is not None:
      wanted.update(row_arm[r.id] for r in table.rows)
    elif token in row_arm:
      wanted.add(row_arm[token])
    else:
      choices = [t.key for t in subtables] + sorted(row_arm)
      raise ValueError(f"--only: unknown sub-table or row {token!r}; choose from {', '.join(choices)}")
  return [arm for arm in arm_list if arm.name in wanted]
