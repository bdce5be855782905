"""``--probe``: measure the training rate on the cluster itself, in place of the table's figures.

A probe is a few dozen optimizer steps of plain fine-tuning with the experiment's first arm's recipe
(model, batch, length, precision) on the sweep's own tokenized data, as real Ray Train runs on one device
of the cluster: first one run alone, then (for ``--gpus-per-trial auto``) 2, 4 and 8 at once sharing that
device (fractional GPUs; CPU fractions on a CPU cluster), stopping where a run fails (out of memory) or the
aggregate stops growing. A run's rate is the loop's own ``train_samples_per_second`` (training steps only,
start-up and evaluation excluded); the aggregate of k runs is the sum of theirs, which assumes they overlap:
the runs start together and train for tens of seconds, so they do for all but their first steps.

The probe's evaluation is switched off (``eval_every_steps`` past the last step) and its runs write only to
``<storage>/probe``; it trains on the method ``baseline`` (what the table measures), the method's extra work
being ``Method.training_sequences``'s part.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from orchestrator.throughput import TRIALS_PER_DEVICE, Rate
from trainables.training.memory import PEAK_GPU_MEMORY
from trainables.training.pace import SAMPLES_PER_SECOND

PROBE_STEPS = 40
GROWTH = 1.05  # a sharing count must beat the one before by this much for the probe to try the next


def probe_rates(train_cfg, launch, kind: str, *, sharing: bool, steps: int = PROBE_STEPS,
                log=print) -> dict[int, Rate]:
    """Measured aggregate rates by trials per device: 1 alone, and with ``sharing`` 2, 4, 8 at once (stopping early).

    ``train_cfg`` is the arm's resolved config; ``launch`` the sweep's ``TrainLaunch`` (one device per run).
    """
    cfg = train_cfg.replace(method="baseline", method_params={}, max_steps=steps, eval_every_steps=10 * steps,
                            predictions_path="", generalized_path="", cka_path="", keep_model=False)
    rates: dict[int, Rate] = {}
    # On CPUs only 1 and 2: Ray does not pin a CPU, so more runs "on one CPU" spread over the machine's cores.
    counts = (TRIALS_PER_DEVICE if kind != "cpu" else TRIALS_PER_DEVICE[:2]) if sharing else (1,)
    for trials in counts:
        share = replace(launch, gpus_per_worker=launch.gpus_per_worker / trials,
                        cpus_per_worker=launch.cpus_per_worker / trials if launch.gpus_per_worker == 0
                        else launch.cpus_per_worker,
                        storage_path=f"{launch.storage_path}/probe", max_failures=0)
        try:
            with ThreadPoolExecutor(max_workers=trials) as pool:
                results = list(pool.map(lambda k: share.fit(cfg.replace(seed=1 + k), f"probe-{trials}x-{k}",
                                                            forward=False), range(trials)))
        except Exception as exc:  # out of memory, typically: the previous count is the most that fits
            log(f"[probe] {trials} run(s) at once failed ({str(exc).splitlines()[0][:120]}); stopping at "
                f"{max(rates, default=0)}")
            break
        values = [dict(result.return_value or {}).get(SAMPLES_PER_SECOND, 0.0) for result in results]
        memory = max(dict(result.return_value or {}).get(PEAK_GPU_MEMORY, 0.0) for result in results)
        rates[trials] = Rate(trials, float(sum(values)), float(memory), kind,
                             f"--probe, {steps} steps x {trials} run(s) on {kind}")
        log(f"[probe] {trials} run(s) sharing one {'CPU' if kind == 'cpu' else 'GPU'}: "
            f"{sum(values):,.1f} sequences/s in all")
        previous = rates.get(trials // 2)
        if previous and rates[trials].samples_per_second < GROWTH * previous.samples_per_second:
            break
    return rates
