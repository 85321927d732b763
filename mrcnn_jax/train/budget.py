"""A training run that fits a wall-clock budget (``config.train.time_budget_s > 0``).

The loop trains the configured schedule for a few steps, measures its rate, and asks ``fit`` for a
plan (and again every REPLAN_EVERY steps until the first lr decay, so that a slow start, a compile or
another job on the machine does not decide the whole run): the configured ``steps`` when they fit what is left of the budget, else fewer steps with the
schedule's shape kept (the lr decay points scaled by the same factor; warmup, which is about
stability rather than length, is kept). Evaluation of a budgeted run happens at the end only, outside
the budget. The plan is written to the workdir, so a resumed run keeps the schedule it started with.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ml_collections import ConfigDict

from mrcnn_jax import outputs

PLAN_FILE = "budget_plan.json"
MEASURE_FROM, MEASURE_TO = 10, 40  # the rate: steps after the first (compiling) one, past warm-up effects
MARGIN = 0.96                      # of the remaining time planned for steps; the rest absorbs rate drift
REPLAN_EVERY = 50                  # steps: the moving window over which the rate is re-measured
REPLAN_CHANGE = 0.05               # a re-plan moving the steps by less keeps the plan (and its decay points)


@dataclasses.dataclass(frozen=True)
class Plan:
  """``steps`` and ``decay_steps`` to train; ``configured_steps`` the config's own; the measured rate."""
  steps: int
  decay_steps: tuple[int, ...]
  configured_steps: int
  seconds_per_step: float
  budget_s: float

  @property
  def shortened(self) -> bool:
    return self.steps < self.configured_steps


def fit(train: ConfigDict, elapsed_s: float, step: int, seconds_per_step: float) -> Plan:
  """The plan for ``train`` (a ``config.train``) once ``step`` steps ran in ``elapsed_s`` seconds of
  its budget at ``seconds_per_step`` (another schedule costs no compile: the step takes its lengths
  as inputs). Never fewer steps than ``step + 1``."""
  usable = MARGIN * (train.time_budget_s - elapsed_s)
  if (train.steps - step) * seconds_per_step <= usable:   # fits: the configured schedule, untouched
    return Plan(train.steps, tuple(train.decay_steps), train.steps, seconds_per_step, train.time_budget_s)
  steps = max(step + 1, step + int(usable / seconds_per_step))
  scale = steps / train.steps
  decay = tuple(min(steps, max(step + 1, round(d * scale))) for d in train.decay_steps)
  return Plan(steps, decay, train.steps, seconds_per_step, train.time_budget_s)


def apply(train: ConfigDict, plan: Plan) -> None:
  """Sets ``train.steps`` and ``train.decay_steps`` to the plan's (in place)."""
  train.steps, train.decay_steps = plan.steps, plan.decay_steps


def describe(plan: Plan, eta: str) -> str:
  """One line for the user: the rate, the decision, and when training ends."""
  need = plan.configured_steps * plan.seconds_per_step
  head = (f"time budget {plan.budget_s:.0f} s: {plan.seconds_per_step:.2f} s/step measured, so the "
          f"configured {plan.configured_steps} steps need ~{need:.0f} s")
  if not plan.shortened:
    return f"{head} and fit; training ends ~{eta}"
  decays = ", ".join(map(str, plan.decay_steps)) or "none"
  return (f"{head}: training {plan.steps} steps instead, the schedule scaled to them (lr decay at "
          f"{decays}); ends ~{eta}. A faster machine, or time_budget_s=0, trains the full recipe")


def save(workdir: str, plan: Plan) -> None:
  outputs.write_text(os.path.join(workdir, PLAN_FILE), json.dumps(dataclasses.asdict(plan), indent=1))


def load(workdir: str) -> Plan | None:
  """The plan a previous run of this workdir saved, or None."""
  path = os.path.join(workdir, PLAN_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    fields = json.load(f)
  return Plan(**{**fields, "decay_steps": tuple(fields["decay_steps"])})
