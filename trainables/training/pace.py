"""How fast a run goes and when it will end: what the loop adds to each evaluation's report, so that the
sweep's console (``orchestrator.progress``) can say "step 1200/9375 (13 %), 85.3 samples/s, ETA 27 min"
while a trial trains for an hour instead of staying silent until it ends.

Two questions, two clocks:

* throughput, ``train_samples_per_second``: training samples (every micro-batch of every worker, so
  gradient accumulation and DDP are counted) over training seconds only (``RunState.train_seconds``
  leaves out evaluations and checkpoint writes), over every attempt of the run. It measures the model on
  its hardware, and it is the same key the run's final report carries for the whole run, so MLflow keeps
  one curve of it;
* the ETA, ``eta_seconds``: wall-clock seconds per optimizer step of this attempt (training, evaluations,
  checkpoint writes: all that a step costs) times the steps left, plus the final test pass, estimated as
  one selection evaluation's mean duration times how many test rows there are per selection row. The
  attempt's clock starts when its model and data are ready, so a worker's start-up is not spread over its
  steps. Not in it: the passes a run makes after its test when asked (SALT's generalized XNLI pairs,
  X-Mixup's CKA).

``total_steps`` and ``eta_seconds`` are for the console only (``PROGRESS_ONLY``), not metrics of a run:
the MLflow callback leaves them out. So are the final report's ``train_began_at`` and ``train_ended_at``:
the wall-clock times (Unix seconds, this attempt) when training began (model and data ready) and when its
last step ended (the timer's stop before the last evaluation, after the device synchronised), from which
``bench/gpu_report.py`` tells a trial's Ray start-up and tear-down from its training.

The final report also counts what was trained on, ``train_samples`` and ``train_tokens`` (non-padding
tokens: the sum of every attention mask the model encodes, so X-Mixup's pairs count both sides). They are
counts, the same for a run and the same run resumed, so a run's results stay comparable key by key; its
tokens per second follow from them and its samples per second (``tokens_per_second``), and the sweep's
MLflow callback logs that rate (``orchestrator.cost``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, TypeVar

TOTAL_STEPS = "total_steps"
SAMPLES_PER_SECOND = "train_samples_per_second"
TOKENS_PER_SECOND = "train_tokens_per_second"
TRAIN_SAMPLES = "train_samples"
TRAIN_TOKENS = "train_tokens"
ETA_SECONDS = "eta_seconds"
TRAIN_BEGAN_AT = "train_began_at"
TRAIN_ENDED_AT = "train_ended_at"
PROGRESS_ONLY = frozenset({TOTAL_STEPS, ETA_SECONDS, TRAIN_BEGAN_AT, TRAIN_ENDED_AT})
"""Report keys that say where or when a run is, not how it does: the console and benchmarks read them, MLflow
does not log them."""

T = TypeVar("T")


def samples_per_second(samples: int, seconds: float) -> float:
    """Training samples (all workers') per training second; 0.0 before any training time was measured."""
    return samples / seconds if seconds > 0 else 0.0


def non_padding_tokens(batch: Mapping[str, Any]) -> int:
    """The tokens a batch trains on: the sum of its attention masks (``attention_mask`` and a method's
    ``<prefix>attention_mask``), padding left out. Read from the loader's CPU tensors: no device sync."""
    return sum(int(value.sum()) for key, value in batch.items() if key.endswith("attention_mask"))


def tokens_per_second(samples_per_second: float, samples: float, tokens: float) -> float:
    """Non-padding tokens per training second: the samples' rate times the tokens per sample (0.0 without samples)."""
    return samples_per_second * tokens / samples if samples > 0 else 0.0


def remaining_seconds(step: int, total_steps: int, *, first_step: int, elapsed: float,
                      final_pass: float) -> float:
    """Seconds until the run ends: the steps left at this attempt's pace (``elapsed`` wall seconds for the
    steps since ``first_step``, where the attempt started) plus the final pass's estimate."""
    done = step - first_step
    per_step = elapsed / done if done > 0 else 0.0
    return max(total_steps - step, 0) * per_step + final_pass


class Pace:
    """One attempt of a run: its wall clock, its evaluations' durations, and the progress keys of a report."""

    def __init__(self, total_steps: int, *, first_step: int, test_rows_per_selection_row: float,
                 clock: Callable[[], float] = time.perf_counter):
        self.total_steps, self.first_step = total_steps, first_step
        self.test_share = test_rows_per_selection_row
        self.clock = clock
        self.started = clock()
        self.eval_seconds, self.evaluations = 0.0, 0

    def timed_evaluation(self, evaluate: Callable[[], T]) -> T:
        """``evaluate()``, its duration kept for the final test pass's estimate."""
        began = self.clock()
        value = evaluate()
        self.eval_seconds += self.clock() - began
        self.evaluations += 1
        return value

    def report(self, step: int, *, samples: int, train_seconds: float) -> dict[str, float]:
        """The keys an evaluation's report adds: the run's step count, throughput so far and ETA."""
        final_pass = self.test_share * self.eval_seconds / max(self.evaluations, 1)
        return {TOTAL_STEPS: self.total_steps,
                SAMPLES_PER_SECOND: samples_per_second(samples, train_seconds),
                ETA_SECONDS: remaining_seconds(step, self.total_steps, first_step=self.first_step,
                                               elapsed=self.clock() - self.started, final_pass=final_pass)}
