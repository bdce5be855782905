"""The console's progress lines (``orchestrator.progress``, ``trainables.training.pace``): hand-computed ETAs,
percentages and rates, the rate limit on an injected clock, the stage's counts from trials with a ``status`` (plain
objects standing for Tune's ``Trial``), and the printer that Tune calls, fed as Tune feeds it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from orchestrator.progress import (PROGRESS_EVERY_S, StageClock, StageCounts, Throttle, format_duration, percent,
                                   stage_counts, stage_eta, stage_line, trial_line)
from orchestrator.stages import ProgressPrinter
from trainables.training.pace import Pace, remaining_seconds, samples_per_second


class Clock:
    """A clock the test sets."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeTrial:
    """Stands for Tune's ``Trial``: what the printer reads of it."""

    trial_id: str
    status: str = "PENDING"
    config: dict = field(default_factory=dict)
    last_result: dict = field(default_factory=dict)


RUNNING = {"step": 1200, "total_steps": 9375, "train_samples_per_second": 85.2999, "eval_dev_acc": 0.73124,
           "dev_acc": 0.74012, "eta_seconds": 1620.0, "epoch": 0.128, "train_loss": 0.61}


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (45.2, "45 s"), (59.6, "1 min"), (89, "1 min"),
                                           (1620, "27 min"), (3599, "1 h 00 min"), (3900, "1 h 05 min"),
                                           (7 * 3600 + 59 * 60 + 40, "8 h 00 min"), (-3, "0 s")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert format_duration(seconds) == text


def test_percent_rounds_but_says_100_only_at_the_end():
    assert percent(1200, 9375) == 13  # 12.8 %
    assert percent(9374, 9375) == 99  # 99.99 % is not done
    assert percent(9375, 9375) == 100
    assert percent(5, 0) == 0


def test_a_running_trials_line():
    assert trial_line("salt seed 3", RUNNING, "dev_acc") == (
        "salt seed 3: step 1200/9375 (13 %), 85.3 samples/s, dev_acc 0.7312 (best 0.7401), ETA 27 min")


def test_a_report_without_the_pace_keys_says_what_it_has():
    """A report of a run that predates the pace keys: the step and the scores, no total, rate or ETA."""
    old = {k: v for k, v in RUNNING.items() if k not in ("total_steps", "train_samples_per_second", "eta_seconds")}
    assert trial_line("trial a", old, "dev_acc") == "trial a: step 1200, dev_acc 0.7312 (best 0.7401)"


def test_a_trial_over_seeds_shows_means_and_its_slowest_seeds_eta():
    per_seed = {"9001": {**RUNNING, "eta_seconds": 100.0}, "9002": {**RUNNING, "eta_seconds": 1620.0},
                "9003": {**RUNNING, "eta_seconds": 300.0}}
    group = {**RUNNING, "eta_seconds": 673.3, "search_seeds": 3, "per_seed": per_seed}
    assert trial_line("trial a", group, "dev_acc") == (
        "trial a: step 1200/9375 (13 %), 85.3 samples/s per seed run, dev_acc 0.7312 (best 0.7401) "
        "(means of 3 seeds), ETA 27 min")
    del per_seed["9002"]["eta_seconds"]  # a seed that cannot say: no ETA rather than a wrong one
    assert trial_line("trial a", group, "dev_acc").endswith("(means of 3 seeds)")


def test_a_recipe_trial_says_a_phase_ended_and_final_or_failed_reports_have_no_line():
    assert trial_line("trial a", {"dev_acc": 0.7, "teacher_dev_acc": 0.7, "st_pool_rows": 90}, "dev_acc") == (
        "trial a: a phase of its recipe ended, dev_acc 0.7000")
    assert trial_line("trial a", {"dev_acc": 0.7, "search_seeds": 2}, "dev_acc") == (
        "trial a: a phase of its recipe ended, dev_acc 0.7000 (means of 2 seeds)")
    assert trial_line("trial a", {"step": 76, "dev_acc": 0.7, "test_acc_avg": 0.6}, "dev_acc") is None
    assert trial_line("trial a", {**RUNNING, "failed": 1.0}, "dev_acc") is None


def test_throughput_and_remaining_time_by_hand():
    assert samples_per_second(2400, 30.0) == 80.0
    assert samples_per_second(2400, 0.0) == 0.0
    # 200 steps since step 1000 took 400 s: 2 s a step, 8175 steps left, and a 60 s test pass.
    assert remaining_seconds(1200, 9375, first_step=1000, elapsed=400.0, final_pass=60.0) == 8175 * 2 + 60
    assert remaining_seconds(9375, 9375, first_step=0, elapsed=400.0, final_pass=60.0) == 60


def test_pace_times_evaluations_for_the_test_pass():
    clock = Clock(100.0)
    pace = Pace(9375, first_step=1000, test_rows_per_selection_row=30.0, clock=clock)

    def evaluate():
        clock.now += 4.0  # one selection evaluation: 4 s
        return 0.73

    clock.now = 500.0
    assert pace.timed_evaluation(evaluate) == 0.73
    report = pace.report(1200, samples=38400, train_seconds=450.0)
    # 404 s for 200 steps; the test: 30 evaluations' worth, 120 s.
    assert report == {"total_steps": 9375, "train_samples_per_second": pytest.approx(38400 / 450),
                      "eta_seconds": pytest.approx(8175 * 404 / 200 + 120)}


def test_the_rate_limit_prints_each_trials_first_line_then_one_per_interval():
    clock = Clock()
    throttle = Throttle(30.0, clock)
    seen = []
    for now, key in [(0, "a"), (10, "a"), (10, "b"), (29.9, "a"), (30, "a"), (45, "b"), (59, "a"), (61, "a")]:
        clock.now = now
        seen.append(throttle.due(key))
    assert seen == [True, False, True, False, True, True, False, True]
    assert PROGRESS_EVERY_S == 30.0


def test_stage_counts_from_trial_statuses():
    trials = [FakeTrial("a", "TERMINATED"), FakeTrial("b", "ERROR"), FakeTrial("c", "RUNNING"),
              FakeTrial("d", "RUNNING"), FakeTrial("e", "PENDING")]
    # d's end is being reported: Tune still says RUNNING then. Trials not made yet by the searcher are left.
    counts = stage_counts(trials, expected=10, ended="d")
    assert counts == StageCounts(expected=10, done=3, failed=1, running=1)
    assert counts.left == 6


def test_stage_eta_spreads_a_mean_trial_over_the_concurrency_seen():
    # Mean 150 s; 5 to start (750 s) and two running with 100 s and 10 s to go: 860 s over 2 at once.
    assert stage_eta(5, durations=[100.0, 200.0], running_elapsed=[50.0, 140.0], concurrency=2.0) == 430.0
    # The last trial runs alone: its rest, not its rest over the 4 that ran at once before.
    assert stage_eta(0, durations=[150.0], running_elapsed=[30.0], concurrency=4.0) == 120.0
    # One to start: at least a mean trial, however many ran at once.
    assert stage_eta(1, durations=[150.0], running_elapsed=[], concurrency=4.0) == 150.0
    assert stage_eta(5, durations=[], running_elapsed=[50.0], concurrency=2.0) is None


def test_stage_lines():
    assert stage_line(StageCounts(10, 3, 1, 2), 430.0) == "3 of 10 trials done (1 failed), 2 running, 5 left, ETA 7 min"
    assert stage_line(StageCounts(10, 0, 0, 2), None) == "0 of 10 trials done, 2 running, 8 left, ETA unknown"
    assert stage_line(StageCounts(4, 4, 0, 0), None) == "4 of 4 trials done, 0 running, 0 left"


def test_stage_clock_durations_and_concurrency():
    clock = Clock()
    stage = StageClock(clock)
    stage.start("a")
    stage.start("b")
    clock.now = 100.0
    assert stage.end("a", completed=True) == 100.0
    stage.start("c")
    clock.now = 160.0
    # Trial-seconds 100 (a) + 160 (b) + 60 (c) over 160 s of the stage.
    assert stage.concurrency() == 2.0
    assert sorted(stage.running_elapsed()) == [60.0, 160.0]
    assert stage.end("b", completed=False) == 160.0
    assert stage.durations == [100.0]  # a failure's duration says nothing about a trial's
    assert stage.end("unseen", completed=True) == 0.0 and stage.durations == [100.0]


def test_the_printer_keeps_its_lines_and_adds_progress(capsys):
    """Fed as Tune feeds it: two search trials start at once; a's evaluations every 10 s print at most every 30 s;
    a ends after 100 s, then the stage says what is left. The start, done and FAILED lines keep their wording."""
    clock = Clock()
    printer = ProgressPrinter("search", resolver=None, objective="dev_acc", expected=4)
    printer.clock, printer.throttle = StageClock(clock), Throttle(30.0, clock)
    a = FakeTrial("a", config={"learning_rate": 2e-5})
    b = FakeTrial("b", config={"learning_rate": 3e-5})
    trials = [a, b]
    for trial in trials:
        printer.on_trial_start(0, trials, trial)
        trial.status = "RUNNING"
    for now in (10, 20, 30, 40, 50):
        clock.now = now
        printer.on_trial_result(0, trials, a, {**RUNNING, "step": now * 10})
    clock.now = 100.0
    a.last_result = {"step": 76, "dev_acc": 0.74012, "test_acc_avg": 0.61, "test_acc_avg_en": 0.62}
    printer.on_trial_result(0, trials, a, a.last_result)  # the final report: the done line shows it
    printer.on_trial_complete(0, trials, a)
    a.status = "TERMINATED"  # Tune sets it after the callbacks
    clock.now = 120.0
    b.status = "ERROR"
    printer.on_trial_error(0, trials, b)
    assert capsys.readouterr().out.splitlines() == [
        "[search] start trial a (learning_rate=2e-05)",
        "[search] start trial b (learning_rate=3e-05)",
        "[search] trial a: step 100/9375 (1 %), 85.3 samples/s, dev_acc 0.7312 (best 0.7401), ETA 27 min",
        "[search] trial a: step 400/9375 (4 %), 85.3 samples/s, dev_acc 0.7312 (best 0.7401), ETA 27 min",
        "[search] done  trial a (learning_rate=2e-05): dev_acc 0.7401, test_acc_avg 0.6100, test_acc_avg_en 0.6200 "
        "(100 s)",
        # a and b ran all 100 s: concurrency 2; 2 left of a mean 100 s trial (b has 0 s to go): 100 s, about 2 min.
        "[search] 1 of 4 trials done, 1 running, 2 left, ETA 2 min",
        "[search] FAILED trial b (learning_rate=3e-05) (120 s); error file: see MLflow",
        # 220 trial-seconds in 120 s: 1.83 at once; 2 mean trials over that: 109 s.
        "[search] 2 of 4 trials done (1 failed), 0 running, 2 left, ETA 2 min",
    ]


def test_a_printer_pickled_before_the_progress_lines_still_prints(capsys):
    """Tune restores a stage's callbacks from its pickled Tuner: one from before this change lacks the new parts."""
    import pickle

    old = ProgressPrinter.__new__(ProgressPrinter)
    old.__dict__.update({"stage": "search", "resolver": None, "objective": "dev_acc", "_started": {}})
    printer = pickle.loads(pickle.dumps(old))
    trial = FakeTrial("a", "RUNNING", last_result={"dev_acc": 0.5})
    printer.on_trial_start(0, [trial], trial)
    printer.on_trial_result(0, [trial], trial, {**RUNNING, "step": 10})
    printer.on_trial_complete(0, [trial], trial)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" trial a")[0] for line in lines] == ["[search] start", "[search]", "[search] done "]
