"""What a sweep will cost, said before it starts: the dry run's cost lines.

For each arm, the sequences one trial trains on (``Method.training_sequences``: its epochs over the
source-language training rows, times what the method adds: SALT's code-switched copies, X-Mixup's pairs,
self-training's teachers and students); the number of trials of each stage; and device-hours = sequences /
a measured rate of sequences per second, over the devices the trials share. The rate comes from the
repository's table of measured figures (``orchestrator.throughput``) for the model's size on the device
that will run it, or from ``--probe`` (a short real run on the cluster). The estimate names its source;
without one it says what to measure rather than guess.

It counts training steps only: evaluations, checkpoints and each trial's start-up (tens of seconds on
Ray) come on top, and an arm that resolves to another's configuration (``orchestrator.reuse``) is counted
though it will be reused, so the figure is an order of magnitude to plan by, not a quote.

The training rows are the smoke data's size on the smoke profile and the hub split's size
(``TaskSpec.train_rows``) otherwise: a partial local copy trains on fewer.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.throughput import (AUTO, ModelSize, Rate, SharingChoice, choose_trials_per_device, measured_rates,
                                     model_size, rate_text)
from trainables.methods import get_spec


@dataclass(frozen=True)
class Workload:
    """The sweep's training work: sequences per trial by (stage, arm), and how many trials each runs."""

    per_trial: dict[tuple[str, str], float]  # (stage, arm) -> sequences one trial trains on
    trials: dict[tuple[str, str], int]  # (stage, arm) -> trials
    rows: int
    rows_source: str

    @property
    def total(self) -> float:
        return sum(self.per_trial[key] * self.trials[key] for key in self.trials)


def train_rows(cfg, task) -> tuple[int, str]:
    """The source-language training rows a trial sees, and where the number comes from."""
    if cfg.profile == "smoke" and cfg.data_dir is None:
        from smoke.builds import DEFAULT_SIZES

        return DEFAULT_SIZES["train"], "the smoke data"
    if not task.train_rows:
        return 0, f"unknown for {task.name}"
    where = "the hub's split; a local copy may hold fewer" if cfg.data_dir else "the hub's split"
    return task.train_rows, f"{task.source_language} train, {where}"


def workload(cfg, experiment, task, resolver, searches: list) -> Workload:
    """The sequences of every stage's trials: each search trial trains its searched arm's paper point on
    ``--search-seeds`` seeds; each confirm trial one arm on one seed."""
    rows, source = train_rows(cfg, task)
    per_trial, trials = {}, {}
    seed = cfg.seeds[0]
    for search in searches:
        key = (search.stage, search.arm)
        per_trial[key] = _sequences(resolver.arm_config(search.arm, seed), rows) * cfg.search_seeds
        trials[key] = cfg.num_samples
    if "confirm" in cfg.stages:
        for arm in experiment.confirm_arms:
            key = ("confirm", arm.name)
            per_trial[key] = _sequences(resolver.arm_config(arm.name, seed), rows)
            trials[key] = len(cfg.seeds)
    return Workload(per_trial, trials, rows, source)


def _sequences(train_cfg, rows: int) -> float:
    return get_spec(train_cfg.method).method.training_sequences(train_cfg, rows)


def precision_of(kind: str, bf16: bool) -> str:
    """What our loop trains in on ``kind``: bf16 autocast on GPUs when on (``TrainConfig.bf16``), else fp32."""
    return "bf16" if bf16 and kind != "cpu" else "fp32"


def rate_for(size: ModelSize | None, kind: str, precision: str, max_length: int,
             probe: dict[int, Rate] | None = None) -> tuple[dict[int, Rate], str]:
    """The rates to estimate with, by trials per device, and where they come from: the probe's, else the table's."""
    if probe:
        return probe, "measured on this cluster"
    if size is None:
        return {}, "the model's size is unknown offline (a local directory's config.json tells it)"
    rates = measured_rates(size, kind, precision, max_length=max_length)
    return rates, "orchestrator/throughput.csv" if rates else f"no measured figure for {size} on {kind} ({precision})"


def estimate_lines(cfg, experiment, task, resolver, searches: list, kinds: list[str],
                   probe: dict[str, dict[int, Rate]] | None = None) -> list[str]:
    """The dry run's ``cost`` lines: samples per trial per arm, trials, and device-hours per device kind in ``kinds``."""
    work = workload(cfg, experiment, task, resolver, searches)
    if not work.rows:
        return [f"cost         training rows {work.rows_source}: no estimate"]
    lines = ["cost         training sequences per trial (" + f"{work.rows:,} rows, {work.rows_source}): "
             + "; ".join(f"{arm} {n:,.0f}" + (f" ({stage})" if stage != "confirm" else "")
                         for (stage, arm), n in work.per_trial.items())
             + f"; {sum(work.trials.values())} trials, {work.total:,.0f} sequences in all"]
    size = model_size(cfg.model)
    first = resolver.arm_config(experiment.confirm_arms[0].name, cfg.seeds[0])
    for kind in kinds:
        precision = precision_of(kind, first.bf16)
        rates, source = rate_for(size, kind, precision, first.max_length, (probe or {}).get(kind))
        unit = "CPU" if kind == "cpu" else "GPU"
        if not rates:
            lines.append(f"             {kind}: {source}: run with --probe (a short real run on the cluster) or "
                         f"`make bench-gpu` there (bench/gpu_report.py --write-table)")
            continue
        auto = cfg.resources.gpus_per_trial == AUTO or (cfg.resources.gpus_per_trial is None and kind != "cpu")
        given = cfg.resources.gpus_per_trial
        sharing = (choose_trials_per_device(rates, kind=unit) if auto
                   else SharingChoice(round(1 / given) if isinstance(given, float) and 0 < given < 1 else 1, ""))
        lines.append("             " + device_hours_line(work, rates.get(sharing.trials) or rates[min(rates)], sharing,
                                                          unit, source))
        if auto:
            lines.append(f"             --gpus-per-trial auto: {sharing.reason}")
    return lines


def device_hours_line(work: Workload, rate: Rate, sharing: SharingChoice, unit: str, source: str) -> str:
    """``~X GPU-hours on <device>``: the sweep's sequences at the chosen sharing's aggregate rate (each trial
    holds 1/k of a device, so k trials' device-hours are the device's hours)."""
    hours = work.total / rate.samples_per_second / 3600
    per_second = rate_text(rate.samples_per_second, grouped=True)
    return (f"~{hours:.3g} {unit}-hours on {rate.device} ({per_second} sequences/s with {sharing.trials} trial(s) per "
            f"{unit}; training steps only) [source: {source}: {rate.source}]")


def planned_kinds(cfg) -> list[str]:
    """The devices a dry run estimates for, without starting Ray: CPU where no GPU is asked for; this machine's
    GPU (or CPU) for a local sweep; for a cluster (``--address``), every GPU the table has figures for."""
    from orchestrator.throughput import table_gpu_kinds

    if cfg.resources.gpus_per_trial == 0:
        return ["cpu"]
    if not cfg.resources.address:
        import torch

        return [torch.cuda.get_device_name()] if torch.cuda.is_available() else ["cpu"]
    return table_gpu_kinds() or ["GPU"]
