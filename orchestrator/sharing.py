"""How many trials share one device: ``--gpus-per-trial`` resolved against the running cluster.

A number is taken as given. ``auto`` (the default where the cluster has GPUs) picks the trials per GPU
with the highest aggregate throughput for the sweep's model, device and precision, from ``--probe``'s
measurement or the repository's table (``orchestrator.throughput``); one trial per GPU where neither
has a figure. On a cluster without GPUs, explicit ``auto`` applies the same rule to CPUs: k trials per
CPU means each worker asks for 1/k of one. The choice and its reason are printed and logged on the
parent run (``resources.*`` params). A preparation step's Ray Data actors (SALT's scan) share a GPU by the
same rule from their own measured rows (``actor_share``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.throughput import AUTO, Rate, SharingChoice, choose_trials_per_device, cluster_device_kind, measured_rates, model_size
from trainables.preparation import Cluster, DeviceShare


@dataclass(frozen=True)
class Sharing:
    gpus_per_trial: float
    cpus_per_worker: float
    choice: SharingChoice | None  # None: --gpus-per-trial was a number (or 0 on a CPU cluster by default)
    kind: str

    def params(self) -> dict[str, str]:
        """What the parent run records."""
        out = {"resources.device": self.kind, "resources.gpus_per_trial": f"{self.gpus_per_trial:g}",
               "resources.cpus_per_worker": f"{self.cpus_per_worker:g}"}
        if self.choice:
            out.update({"resources.trials_per_device": str(self.choice.trials), "resources.sharing": self.choice.reason})
        return out


def resolve_sharing(requested: float | str | None, cpus_per_worker: float, cluster: dict[str, float], *,
                    model: str | None, precision: str, max_length: int,
                    probe: dict[int, Rate] | None = None) -> Sharing:
    """The trial's GPUs and each worker's CPUs for ``--gpus-per-trial requested`` on ``cluster``."""
    kind = cluster_device_kind(cluster)
    if requested not in (None, AUTO):
        return Sharing(float(requested), cpus_per_worker, None, kind)
    if requested is None and kind == "cpu":  # CPU clusters share by default only when asked (auto)
        return Sharing(0.0, cpus_per_worker, None, kind)
    size = model_size(model)
    rates = probe or (measured_rates(size, kind, precision, max_length=max_length) if size else {})
    choice = choose_trials_per_device(rates, kind="CPU" if kind == "cpu" else "GPU")
    if kind == "cpu":
        return Sharing(0.0, cpus_per_worker * choice.fraction(), choice, kind)
    return Sharing(choice.fraction(), cpus_per_worker, choice, kind)


def actor_share(workload: str, cluster: dict[str, float], *, model: str | None, precision: str = "fp32") -> DeviceShare:
    """How many actors of a preparation step's Ray Data ``workload`` (e.g. SALT's scan) share one GPU of
    ``cluster``: the count with the best measured aggregate rate for the model on this GPU kind (the table's
    rows of that workload, ``bench/gpu_report.py --write-table``), by the trials' rule; 1 without a figure. The
    scan runs in full precision (no autocast), so its rows are ``fp32``."""
    kind = cluster_device_kind(cluster)
    if kind == "cpu":
        return DeviceShare(0.0, "CPU actors (the cluster has no GPU)")
    size = model_size(model)
    rates = measured_rates(size, kind, precision, workload=workload) if size else {}
    choice = choose_trials_per_device(rates, unit=f"{workload} actor", per="sentences/s",
                                      how="`make bench-gpu` on this GPU measures it (section 4, --write-table)")
    return DeviceShare(choice.fraction(), choice.reason)


def preparation_cluster(cfg, cluster: dict[str, float]) -> Cluster:
    """The cluster as the preparation steps' Ray work sees it (``trainables.preparation.Cluster``)."""
    return Cluster(resources=dict(cluster), share=lambda workload: actor_share(workload, cluster, model=cfg.model))


def sweep_sharing(cfg, cluster: dict[str, float], first, sweep_dir: Path) -> Sharing:
    """``--gpus-per-trial`` on the sweep's cluster for its first arm's config ``first`` (the model, length and
    precision the table is read for), after ``--probe``'s measurement if asked; printed when the sweep chose it."""
    from orchestrator.estimate import precision_of

    kind = cluster_device_kind(cluster)
    probe = probe_cluster(cfg, first, kind, sweep_dir, sharing=True) if cfg.probe else None
    sharing = resolve_sharing(cfg.resources.gpus_per_trial, cfg.resources.cpus_per_worker, cluster,
                              model=first.model, precision=precision_of(kind, first.bf16), max_length=first.max_length,
                              probe=probe)
    if sharing.choice:
        print(f"[resources] {sharing.choice.reason}", flush=True)
    return sharing


def probe_cluster(cfg, train_cfg, kind: str, storage: Path, *, sharing: bool) -> dict[int, Rate]:
    """``--probe`` (``orchestrator.probe``) on one device of the cluster, runs under ``storage/probe``."""
    from orchestrator.probe import probe_rates
    from orchestrator.trial import TrainLaunch

    one_device = TrainLaunch(storage_path=str(storage), num_workers=1, gpus_per_worker=0.0 if kind == "cpu" else 1.0,
                             cpus_per_worker=cfg.resources.cpus_per_worker)
    return probe_rates(train_cfg, one_device, kind, sharing=sharing, log=lambda line: print(line, flush=True))
