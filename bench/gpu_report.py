"""The GPU report: one table of what a trial costs on this device, and how to fill the device.

Run: ``make bench-gpu`` (``python bench/gpu_report.py``). On a GPU: an mBERT-size BERT (768 x 12, vocabulary
119,547, random weights) on XNLI-shaped data (lengths ~58 tokens on average, at most 128), batch 32, in
under 8 minutes on an H100-class GPU. On CPU: a tiny BERT (128 x 2), in under 3 minutes on 2 cores, so the
script is always tested (``tests/test_bench_gpu.py``). Sections, each a row group of the one table:

1. per trial samples/s: our loop (``trainables.loop``) vs a plain and a tuned Hugging Face ``Trainer``,
   alternating rounds in this process, medians (as ``bench/trainer_throughput.py``); and our loop with each
   speed setting on (``padding_free``, ``torch_compile``; off by default), as ratios to our loop with them off:
   the numbers that decide whether a setting becomes a default on this device (README, "Benchmarks");
2. model FLOPs utilisation of each: model training FLOPs per sample x samples/s / the device's dense bf16
   peak (``bench/mfu.py`` states the formula and the peaks' sources);
3. aggregate samples/s of 1, 2, 4, 8 concurrent trials on the device (CPU: 1, 2, one thread each), k OS
   processes of our loop started together (``bench/concurrent_trials.py``), their peak memory, and the MFU
   summed over the k trials;
4. SALT's candidate scan on Ray Data, sentences/s, start-up included (``bench/salt_scan.py``'s workload), with
   1, 2, 4 actors sharing the GPU (CPU: one run of ``--scan-actors`` CPU actors);
5. Ray's overhead on one trial: the share of a real Ray Train run before its first step and after its last
   (``bench/ray_overhead.py``).

Every section is guarded: one that fails prints its error as a row and the rest still run. Rows print as they
come; the whole table prints at the end. ``--json PATH`` writes the figures (after every section);
``--write-table PATH`` appends section 3's and 4's rows to a throughput table (``orchestrator/throughput.csv``'s
columns: aggregate samples/s of OUR loop per trials-per-device, workload ``train``; the scan's sentences/s per
actors sharing a GPU, workload ``salt_scan``), which the dry run's estimate, ``--gpus-per-trial auto`` and the
SALT scan's actors per GPU read.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mfu  # noqa: E402
from trainables.training import compilation  # noqa: E402
from concurrent_trials import free_memory_gb, memory_need_gb, run_concurrent  # noqa: E402
from report_table import Report, append_throughput_rows, fmt_rate, fmt_share  # noqa: E402
from orchestrator.throughput import TRAIN  # noqa: E402
from trainables.methods.salt.scan import SALT_SCAN  # noqa: E402
from workloads import (SIZE_NAMES, SIZES, hf_trainer, make_data, make_model_dir, non_embedding_parameters,  # noqa: E402
                       our_config, ours, scan_workload, train_lengths)

SOURCE = "bench/gpu_report.py"
SCAN_BATCH = 64  # the scan's map_batches batch (``ScanSettings.batch_size``'s default)
# Section 1's runs of our loop with a speed setting on (``TrainConfig``; off by default until measured here).
SPEED_SETTINGS = {"ours_padding_free": {"padding_free": True}, "ours_compile": {"torch_compile": True}}


def parse_args(argv: list[str] | None, gpu: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mbert" if gpu else "tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=120 if gpu else 10, help="steps of each run of section 1")
    parser.add_argument("--rounds", type=int, default=3 if gpu else 2, help="section 1's alternating rounds (medians)")
    parser.add_argument("--trials", default="1,2,4,8" if gpu else "1,2", help="section 3: concurrent trials, e.g. 1,2,4")
    parser.add_argument("--concurrent-steps", type=int, default=120 if gpu else 10, help="steps of each run, section 3")
    parser.add_argument("--scan-examples", type=int, default=8000 if gpu else 200, help="section 4: pairs scanned")
    parser.add_argument("--scan-actors", type=int, default=2, help="section 4 on CPU: Ray Data scanner actors")
    parser.add_argument("--scan-per-gpu", default="1,2,4", help="section 4 on GPU: scanner actors sharing the GPU")
    parser.add_argument("--overhead-steps", type=int, default=100 if gpu else 10, help="section 5: the trial's steps")
    parser.add_argument("--compile-bucket", type=int, default=32 if gpu else 64,
                        help="section 1, ours + compile: batches padded to multiples of this many tokens")
    parser.add_argument("--compile-backend", default="inductor" if gpu else "aot_eager",
                        help="section 1, ours + compile: torch.compile's backend (CPU: aot_eager, as inductor's "
                             "C++ compile takes minutes there)")
    parser.add_argument("--sections", default="1,2,3,4,5", help="which sections run, e.g. 1,2,3")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--write-table", metavar="PATH", help="append sections 3 and 4's rows to this throughput CSV")
    args = parser.parse_args(argv)
    try:
        args.trials = sorted({int(k) for k in args.trials.split(",")})
        args.scan_per_gpu = sorted({int(k) for k in args.scan_per_gpu.split(",")})
        args.sections = {int(s) for s in args.sections.split(",")}
    except ValueError:
        parser.exit(2, "error: --trials, --scan-per-gpu and --sections take comma-separated integers, e.g. --trials 1,2,4\n")
    positive = ("batch", "max_length", "steps", "rounds", "concurrent_steps", "scan_examples", "scan_actors",
                "overhead_steps", "compile_bucket")
    bad = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in positive if getattr(args, name) < 1]
    bad += [f"--trials {k}" for k in args.trials if k < 1] + [f"--scan-per-gpu {k}" for k in args.scan_per_gpu if k < 1]
    bad += [f"--sections {s}" for s in args.sections
                                                            if s not in range(1, 6)]
    if bad:
        parser.exit(2, f"error: {', '.join(bad)}: expected positive counts and sections among 1-5\n")
    for flag, path in (("--json", args.json), ("--write-table", args.write_table)):
        if path and not Path(path).resolve().parent.is_dir():
            parser.exit(2, f"error: {flag} {path}: folder {Path(path).resolve().parent} does not exist\n")
    return args


class GpuReport:
    """The workload (model, data, FLOPs per sample) and the five sections over it."""

    def __init__(self, args: argparse.Namespace, root: Path, report: Report, gpu: bool):
        self.args, self.root, self.report, self.gpu = args, root, report, gpu
        self.device = torch.cuda.get_device_name() if gpu else f"cpu ({torch.get_num_threads()} threads)"
        self.precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else "fp32"
        self.peak = mfu.peak_bf16(self.device) if gpu else None
        steps = max(args.steps, args.concurrent_steps, args.overhead_steps)
        self.model_dir = make_model_dir(root, args.size)
        self.data_dir = make_data(root, SIZES[args.size][4], n_train=args.batch * steps, max_length=args.max_length)
        hidden, layers = SIZES[args.size][:2]
        lengths = train_lengths(self.data_dir)
        self.mean_tokens, self.mean_sq_tokens = float(lengths.mean()), float((lengths ** 2).mean())
        self.params = non_embedding_parameters(args.size)
        self.flops = mfu.flops_per_sample(self.params, layers, hidden, self.mean_tokens, self.mean_sq_tokens)
        self.per_trial: dict[str, float] = {}
        compilation.BACKEND = args.compile_backend  # what section 1's "ours + compile" runs compile with

    def mfu_text(self, samples_per_second: float) -> str:
        value = mfu.utilisation(samples_per_second, self.flops, self.peak)
        return mfu.NO_PEAK if value is None else fmt_share(value)

    def per_trial_section(self, out: dict) -> None:
        a, add = self.args, self.report.add
        runs: dict[str, list[float]] = {name: [] for name in ("hf_plain", "hf_tuned", "ours", *SPEED_SETTINGS)}
        tokens: dict[str, float] = {}  # non-padding tokens per sample of each of our runs (the same data)
        for round_ in range(a.rounds):
            runs["hf_plain"].append(hf_trainer(self.model_dir, self.data_dir, a.batch, a.steps, tuned=False))
            runs["hf_tuned"].append(hf_trainer(self.model_dir, self.data_dir, a.batch, a.steps, tuned=True))
            for name, settings in {"ours": {}, **SPEED_SETTINGS}.items():
                final = ours(self.model_dir, self.data_dir, a.batch, a.steps, a.max_length, **settings,
                             **({"compile_bucket": a.compile_bucket} if "torch_compile" in settings else {}))
                runs[name].append(final["train_samples_per_second"])
                tokens[name] = final["train_tokens"] / final["train_samples"]
            print(f"   round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in runs.items()), flush=True)
        self.per_trial = {k: statistics.median(v) for k, v in runs.items() if k not in SPEED_SETTINGS}
        speed = {k: statistics.median(runs[k]) for k in SPEED_SETTINGS}
        out.update(runs=runs, median={**self.per_trial, **speed}, tokens_per_sample=tokens)
        for name in ("ours", "hf_tuned", "hf_plain"):
            add("1 per trial", f"{name} samples/s", fmt_rate(self.per_trial[name]),
                f"median of {a.rounds}: " + ", ".join(f"{v:.1f}" for v in runs[name]))
        for ref in ("hf_tuned", "hf_plain"):
            out[f"ours_vs_{ref}"] = ratio = self.per_trial["ours"] / self.per_trial[ref]
            add("1 per trial", f"ours / {ref}", f"{ratio:.2f}x", "target >= 1.3x" if ref == "hf_tuned" else "")
        # The loop's speed settings, on vs off in this process (README, "Benchmarks": on where the ratio pays).
        for name, label in (("ours_padding_free", "ours + padding-free"), ("ours_compile", "ours + compile")):
            out[f"{name}_vs_ours"] = ratio = speed[name] / self.per_trial["ours"]
            detail = (f"median of {a.rounds}: " + ", ".join(f"{v:.1f}" for v in runs[name])
                      + f"; {fmt_rate(speed[name] * tokens[name])} non-padding tokens/s")
            if name == "ours_compile":
                detail += (f"; round 1 includes compiling ({compilation.BACKEND}, buckets of {a.compile_bucket})"
                           + ("" if self.gpu else "; CPU: not inductor, a check that it runs, not a speed figure"))
            add("1 per trial", f"{label} samples/s", fmt_rate(speed[name]), detail)
            add("1 per trial", f"{label} / ours", f"{ratio:.2f}x", "same tokens per step; > 1: the setting pays")

    def mfu_section(self, out: dict) -> None:
        hidden, layers = SIZES[self.args.size][:2]
        out.update(flops_per_sample=self.flops, non_embedding_params=self.params, mean_tokens=self.mean_tokens,
                   mean_squared_tokens=self.mean_sq_tokens, peak_flops=self.peak)
        self.report.add("2 MFU", "model FLOPs per sample", f"{self.flops:.3g}",
                        f"6 x {self.params / 1e6:.1f}M x {self.mean_tokens:.1f} + 12 x {layers} x {hidden} x "
                        f"{self.mean_sq_tokens:.0f} (E[T^2])")
        self.report.add("2 MFU", "device bf16 peak", "n/a" if self.peak is None else f"{self.peak / 1e12:.0f} TFLOP/s",
                        self.device)
        if not self.per_trial:
            raise RuntimeError("no per-trial figures (section 1 did not run or failed)")
        for name, rate in self.per_trial.items():
            out[name] = mfu.utilisation(rate, self.flops, self.peak)
            self.report.add("2 MFU", f"{name} MFU", self.mfu_text(rate), "one trial")

    def concurrent_section(self, out: dict) -> None:
        a = self.args
        threads = max(1, (os.cpu_count() or 1) // max(a.trials)) if self.gpu else 1
        gc.collect()
        if self.gpu:
            torch.cuda.empty_cache()  # section 1's cached blocks are not the children's to lose
        single_peak = None
        base = None
        for k in a.trials:
            free = free_memory_gb(self.gpu)
            if single_peak is not None and memory_need_gb(k, single_peak, gpu=self.gpu) > 0.9 * free:
                need = memory_need_gb(k, single_peak, gpu=self.gpu)
                out[str(k)] = {"skipped": f"needs {need:.1f} GB, {free:.1f} GB free"}
                self.report.add("3 concurrent", f"{k} trials", "skipped", f"needs {need:.1f} GB, {free:.1f} GB free")
                continue
            done = run_concurrent(k, self.root / f"concurrent-{k}", model_dir=self.model_dir, data_dir=self.data_dir,
                                  batch=a.batch, steps=a.concurrent_steps, max_length=a.max_length, threads=threads,
                                  timeout_s=600)
            single_peak = single_peak if single_peak is not None else done.peak_memory_gb
            base = base or done.aggregate
            summed = mfu.utilisation(done.aggregate, self.flops, self.peak)
            out[str(k)] = {"aggregate_samples_per_second": done.aggregate, "peak_memory_gb": done.peak_memory_gb,
                           "mfu_summed": summed, "children": done.children, "threads_per_process": threads}
            own = ", ".join(f"{c['train_samples_per_second']:.1f}" for c in done.children)
            self.report.add("3 concurrent", f"{k} trials: aggregate samples/s", fmt_rate(done.aggregate),
                            f"{done.aggregate / base:.2f}x of 1; each {own}; peak {done.peak_memory_gb:.2f} GB/process"
                            f" ({'max_memory_allocated' if self.gpu else 'ru_maxrss'}); summed MFU "
                            f"{self.mfu_text(done.aggregate)}")
        rows = [{"workload": TRAIN, "model": SIZE_NAMES[a.size], "layers": SIZES[a.size][1], "hidden": SIZES[a.size][0],
                 "device": self.device if self.gpu else f"cpu ({threads} threads)", "precision": self.precision,
                 "max_length": a.max_length, "batch": a.batch, "trials_per_device": int(k),
                 "samples_per_second": round(v["aggregate_samples_per_second"], 2),
                 "peak_memory_gb": round(v["peak_memory_gb"], 3), "measured": datetime.date.today().isoformat(),
                 "source": SOURCE} for k, v in out.items() if "aggregate_samples_per_second" in v]
        out["table_rows"] = rows
        if a.write_table and rows:
            append_throughput_rows(a.write_table, rows)
            self.report.add("3 concurrent", "throughput rows written", str(len(rows)), a.write_table)

    def scan_section(self, out: dict) -> None:
        """The scan on one device with k actors sharing it (GPU: 1, 2, 4; CPU: ``--scan-actors`` CPU actors), each
        a fresh Ray Data run; with ``--write-table``, rows of workload ``salt_scan`` that the SALT step's actors
        per GPU are chosen from (``orchestrator.sharing.actor_share``)."""
        from ray_overhead import start_local_ray
        from trainables.methods.salt.scan import scan_with_ray_data

        a = self.args
        plan, train, sentences = scan_workload(self.root / "scan", a.size, a.scan_examples, languages=4)
        start_local_ray(self.gpu)
        rows = []
        for actors in (a.scan_per_gpu if self.gpu else (a.scan_actors,)):
            gpus = 1.0 / actors if self.gpu else 0.0
            started = time.perf_counter()
            scan_with_ray_data(plan, train, self.root / f"scan-out-{actors}" / "parts", batch_size=SCAN_BATCH,
                               gpus_per_actor=gpus, concurrency=actors)
            seconds = time.perf_counter() - started
            out[str(actors)] = dict(sentences=sentences, seconds=seconds, sentences_per_second=sentences / seconds,
                                    actors=actors, gpus_per_actor=gpus)
            self.report.add("4 SALT scan", f"{actors} actor(s): Ray Data sentences/s", fmt_rate(sentences / seconds),
                            f"{sentences} sentences, {actors} actors x {gpus:g} GPU, 4 languages, top-1, "
                            f"start-up included ({seconds:.0f} s)")
            rows.append({"workload": SALT_SCAN, "model": SIZE_NAMES[a.size], "layers": SIZES[a.size][1],
                         "hidden": SIZES[a.size][0], "device": self.device if self.gpu else "cpu",
                         "precision": "fp32", "max_length": plan.max_length, "batch": SCAN_BATCH,  # no autocast
                         "trials_per_device": actors, "samples_per_second": round(sentences / seconds, 2),
                         "peak_memory_gb": 0, "measured": datetime.date.today().isoformat(), "source": SOURCE})
        out["table_rows"] = rows
        if a.write_table and rows:
            append_throughput_rows(a.write_table, rows)
            self.report.add("4 SALT scan", "throughput rows written", str(len(rows)), a.write_table)

    def overhead_section(self, out: dict) -> None:
        from ray_overhead import measure, start_local_ray

        a = self.args
        start_local_ray(self.gpu)
        cfg = our_config(self.model_dir, self.data_dir, a.batch, a.overhead_steps, a.max_length)
        out.update(measure(cfg, gpu=self.gpu))
        add = self.report.add
        add("5 Ray overhead", "start to first step", f"{out['start_to_first_step_s']:.1f} s",
            f"{fmt_share(out['start_share'])} of the trial's {out['total_s']:.1f} s (fit() call to training start)")
        add("5 Ray overhead", "last step to result", f"{out['last_step_to_result_s']:.1f} s",
            f"{fmt_share(out['end_share'])} (final evaluation and test pass, outcome checkpoint, tear-down)")
        add("5 Ray overhead", "training", f"{out['training_s']:.1f} s",
            f"{a.overhead_steps} steps, {fmt_rate(out['train_samples_per_second'])} samples/s inside Ray Train")


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    args = parse_args(argv, gpu)
    import ray
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="xlt-gpu-report-"))
    try:
        bench = GpuReport(args, root, Report({}, args.json), gpu)
        a = args
        bench.report.header = header = {
            "device": bench.device, "torch": torch.__version__, "size": a.size, "model": SIZE_NAMES[a.size],
            "batch": a.batch, "max_length": a.max_length, "precision": bench.precision, "gpu": gpu,
            "settings": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(a).items()}}
        print(f"device {bench.device}; model {a.size} {SIZES[a.size][:2]}; batch {a.batch}; max length "
              f"{a.max_length}; precision {bench.precision}; torch {torch.__version__}", flush=True)
        sections = [(1, "1 per trial", "per_trial", bench.per_trial_section),
                    (2, "2 MFU", "mfu", bench.mfu_section),
                    (3, "3 concurrent", "concurrent", bench.concurrent_section),
                    (4, "4 SALT scan", "salt_scan", bench.scan_section),
                    (5, "5 Ray overhead", "ray_overhead", bench.overhead_section)]
        for number, title, key, body in sections:
            if number in a.sections:
                bench.report.run(title, key, body)
        header["total_seconds"] = round(time.perf_counter() - began, 1)
        bench.report.dump()
        print(f"\nGPU report: {bench.device}, {SIZE_NAMES[a.size]} ({SIZES[a.size][1]} layers x {SIZES[a.size][0]}), "
              f"batch {a.batch}, max length {a.max_length}, {bench.precision}; {header['total_seconds']:.0f} s\n")
        print(bench.report.table(), flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
