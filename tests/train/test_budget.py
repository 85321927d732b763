"""budget.fit: how a time budget turns into steps and lr decay points."""

import pytest
from ml_collections import ConfigDict

from mrcnn_jax.train import budget


def train_config(steps=2250, decay_steps=(1875, 2150), time_budget_s=700.0):
  return ConfigDict(dict(steps=steps, decay_steps=decay_steps, time_budget_s=time_budget_s))


def test_the_configured_schedule_when_it_fits():
  plan = budget.fit(train_config(), elapsed_s=40.0, step=25, seconds_per_step=0.25)
  assert (plan.steps, plan.decay_steps, plan.shortened) == (2250, (1875, 2150), False)
  # a decay point the measurement already passed stays where it was (a resume replays it there)
  plan = budget.fit(train_config(decay_steps=(20, 2150)), 40.0, 40, 0.25)
  assert plan.decay_steps == (20, 2150)


def test_a_slow_machine_gets_the_same_schedule_shape_in_fewer_steps():
  plan = budget.fit(train_config(), elapsed_s=60.0, step=25, seconds_per_step=0.9)
  # 0.96 * 640 s = 614 s: 682 more steps
  assert plan.steps == 25 + int(0.96 * 640 / 0.9) == 707
  assert plan.decay_steps == (round(1875 * 707 / 2250), round(2150 * 707 / 2250)) == (589, 676)
  assert plan.shortened and plan.seconds_per_step == 0.9 and plan.configured_steps == 2250


def test_a_spent_budget_still_finishes_the_next_step():
  plan = budget.fit(train_config(time_budget_s=50.0), elapsed_s=80.0, step=25, seconds_per_step=1.0)
  assert plan.steps == 26 and plan.decay_steps == (26, 26)


@pytest.mark.parametrize("shortened", [False, True])
def test_plans_survive_the_workdir_and_read_well(tmp_path, shortened):
  plan = budget.fit(train_config(time_budget_s=2000.0 if not shortened else 500.0), 40.0, 25, 0.8)
  budget.save(str(tmp_path), plan)
  assert budget.load(str(tmp_path)) == plan and budget.load(str(tmp_path / "none")) is None
  line = budget.describe(plan, "12:34:56")
  assert "0.80 s/step" in line and "12:34:56" in line
  assert ("lr decay at" in line) == shortened
