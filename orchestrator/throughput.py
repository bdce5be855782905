"""Measured training throughput, kept in the repository: what the cost estimate and ``--gpus-per-trial auto`` read.

``throughput.csv`` holds one row per measurement of a workload: ``train`` (*our* training loop; the rate is
training sequences/s) or ``salt_scan`` (SALT's candidate scan on Ray Data; sentences/s, the batch is
examples per ``map_batches`` batch); a model size (its encoder's layers x hidden size), a device
(``torch.cuda.get_device_name()``, or ``cpu (N threads)``), the precision, the sequence length and batch,
how many trials (scan actors) shared the device, and their **aggregate** rate with each one's peak memory
(0: not measured). ``bench/gpu_report.py --write-table`` appends rows;
nothing here is typed in by hand, so a device the table has no row for gets no figure (the estimate then
says so and points at ``--probe``), never a guessed one.

A model's size comes from its ``config.json`` (a local directory), from the short list of the papers'
hub models below (the dry run runs offline), or the smoke profile's tiny BERT.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("throughput.csv")
COLUMNS = ("workload", "model", "layers", "hidden", "device", "precision", "max_length", "batch", "trials_per_device",
           "samples_per_second", "peak_memory_gb", "measured", "source")
TRIALS_PER_DEVICE = (1, 2, 4, 8)
TRAIN = "train"  # the training loop's workload; a preparation step names its own (SALT's: "salt_scan")
# The encoders the papers used, by hub id: (layers, hidden). Any other model is read from its config.json.
KNOWN_MODELS = {
    "bert-base-multilingual-cased": (12, 768),
    "bert-base-multilingual-uncased": (12, 768),
    "xlm-roberta-base": (12, 768),
    "FacebookAI/xlm-roberta-base": (12, 768),
    "xlm-roberta-large": (24, 1024),
    "FacebookAI/xlm-roberta-large": (24, 1024),
}
# Within this share of the best aggregate, fewer trials per device win: the same work with less memory held
# and fewer trials slowed by a neighbour.
NEAR_BEST = 0.05


@dataclass(frozen=True)
class ModelSize:
    layers: int
    hidden: int

    def __str__(self) -> str:
        return f"{self.layers} layers x {self.hidden}"


@dataclass(frozen=True)
class Rate:
    """One measurement: ``trials`` concurrent trials on one device trained ``samples_per_second`` sequences/s
    between them, each holding at most ``peak_memory_gb``."""

    trials: int
    samples_per_second: float
    peak_memory_gb: float
    device: str
    source: str

    @property
    def per_trial(self) -> float:
        return self.samples_per_second / self.trials


def rate_text(per_second: float, *, grouped: bool = False) -> str:
    """A rate as printed: a whole number from 100 up (``grouped``: with thousands separators), else three
    significant digits (an mBERT trial on one CPU thread trains ~1.5 sequences/s, which a whole number rounds to 2)."""
    if per_second >= 100:
        return f"{per_second:,.0f}" if grouped else f"{per_second:.0f}"
    return f"{per_second:.3g}"


def model_size(model: str | None) -> ModelSize | None:
    """The encoder's size: ``None`` = the smoke profile's tiny BERT; a local HF directory's ``config.json``; a
    known hub id. ``None`` where it cannot be told offline."""
    if model is None:
        from smoke.model import MODEL_CONFIG

        return ModelSize(MODEL_CONFIG["num_hidden_layers"], MODEL_CONFIG["hidden_size"])
    config = Path(model) / "config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        if "num_hidden_layers" in values and "hidden_size" in values:
            return ModelSize(int(values["num_hidden_layers"]), int(values["hidden_size"]))
        return None
    known = KNOWN_MODELS.get(model)
    return ModelSize(*known) if known else None


def device_matches(kind: str, device: str) -> bool:
    """Whether a table row's ``device`` is of ``kind``: "cpu", or a GPU name or part of one ("H100", Ray's
    accelerator type; "NVIDIA H100 80GB HBM3", torch's name)."""
    kind, device = kind.lower().strip(), device.lower()
    if kind == "cpu" or device.startswith("cpu"):
        return kind == "cpu" and device.startswith("cpu")
    return kind in device or device in kind


def measured_rates(size: ModelSize, kind: str, precision: str, *, max_length: int | None = None,
                   workload: str = TRAIN, table: Path = TABLE) -> dict[int, Rate]:
    """The table's rates of ``workload`` for ``size`` on a ``kind`` device in ``precision``, by trials (actors) per
    device (where a (size, device, trials) has several rows, the one measured at ``max_length`` if any, then the
    latest)."""
    if not table.is_file():
        return {}
    with table.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle)
                if row["workload"] == workload and int(row["layers"]) == size.layers and int(row["hidden"]) == size.hidden
                and row["precision"] == precision and device_matches(kind, row["device"])]
    rows.sort(key=lambda row: (max_length is not None and int(row["max_length"]) == max_length, row["measured"]))
    rates = {}
    for row in rows:  # later rows (better matches) replace earlier ones
        trials = int(row["trials_per_device"])
        rates[trials] = Rate(trials, float(row["samples_per_second"]), float(row["peak_memory_gb"] or 0),
                             row["device"], f"{row['source']}, {row['device']}, {row['measured']}")
    return rates


@dataclass(frozen=True)
class SharingChoice:
    """How many trials share one device, and why (printed by the dry run, logged on the parent run)."""

    trials: int
    reason: str

    def fraction(self) -> float:
        """The device share of one trial: ``1 / trials``."""
        return 1.0 / self.trials


def choose_trials_per_device(rates: dict[int, Rate], *, memory_gb: float | None = None, kind: str = "GPU",
                             unit: str = "trial", per: str = "sequences/s", how: str = "--probe measures it"
                             ) -> SharingChoice:
    """The trials (``unit``: or scan actors) per device with the highest aggregate throughput among those whose
    trials fit in the device's memory (``memory_gb``: None = unknown, every measured count fits), the fewest within
    ``NEAR_BEST`` of it. Without measurements: one per device, and the reason says so (and ``how`` to measure)."""
    fits = {k: rate for k, rate in rates.items()
            if memory_gb is None or not rate.peak_memory_gb or rate.peak_memory_gb * k <= memory_gb}
    if not fits:
        why = ("no measured throughput for this model and device" if not rates
               else f"no measured sharing fits in {memory_gb:g} GB")
        return SharingChoice(1, f"1 {unit} per {kind} ({why}; {how})")
    best = max(rate.samples_per_second for rate in fits.values())
    trials = min(k for k, rate in fits.items() if rate.samples_per_second >= (1 - NEAR_BEST) * best)
    rate = fits[trials]
    others = ", ".join(f"{k}: {rate_text(fits[k].samples_per_second)}/s" for k in sorted(fits))
    return SharingChoice(trials, f"{trials} {unit}(s) per {kind}: {rate_text(rate.samples_per_second)} {per} in all "
                                 f"(measured for 1, 2, ...: {others}; the fewest within {NEAR_BEST:.0%} of the best) "
                                 f"[{rate.source}]")


AUTO = "auto"  # --gpus-per-trial auto


def table_gpu_kinds(table: Path = TABLE) -> list[str]:
    """The GPUs the table has figures for (what a dry run for a remote cluster can estimate on)."""
    if not table.is_file():
        return []
    with table.open(newline="") as handle:
        return list(dict.fromkeys(row["device"] for row in csv.DictReader(handle)
                                  if row["workload"] == TRAIN and not row["device"].startswith("cpu")))


def cluster_device_kind(cluster: dict[str, float]) -> str:
    """What trials of a running cluster train on: "cpu" without GPUs, else the GPU kind Ray reports (its
    ``accelerator_type:<kind>`` resource, e.g. H100), or "GPU" where it reports none."""
    if cluster.get("GPU", 0) < 1:
        return "cpu"
    kinds = [key.split(":", 1)[1] for key in cluster if key.startswith("accelerator_type:")]
    return kinds[0] if kinds else "GPU"


def gpus_or_auto(text: str) -> float | str:
    """``--gpus-per-trial``: "auto", or a number of GPUs >= 0."""
    from trainables.arg_types import non_negative_float

    return AUTO if text.strip() == AUTO else non_negative_float(text)
