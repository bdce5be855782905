"""How many trials share one device: ``--gpus-per-trial`` resolved against the running cluster.

A number is taken as given. ``auto`` (the default where the cluster has GPUs) picks the trials per GPU
with the highest aggregate throughput for the sweep's model, device and precision, from ``--probe``'s
measurement or the repository's table (``orchestrator.throughput``); one trial per GPU where neither
has a figure. On a cluster without GPUs, explicit ``auto`` applies the same rule to CPUs: k trials per
CPU means each worker asks for 1/k of one. The choice and its reason are printed and logged on the
parent run (``resources.*`` params).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.throughput import AUTO, Rate, SharingChoice, choose_trials_per_device, cluster_device_kind, measured_rates, model_size


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
