"""What Ray costs one trial: the share of a Ray Train run's wall time before its first step and after its last.

One real trial's training, as a sweep starts it: ``orchestrator.trial.TrainLaunch.fit`` (a ``TorchTrainer``
running the project's worker function, ``trainables.worker.train_loop_per_worker``) on a local Ray. The
driver times ``fit()`` from its call to its return; the worker's loop reports when its training began
(model and data loaded, the first step about to start: ``train_began_at``) and when its last step ended
(``train_ended_at``). So:

- start to first step = ``train_began_at - call``: Ray Train's controller and worker group, the worker's
  process and imports, loading the model and the data;
- last step to result = ``return - train_ended_at``: the final evaluation and test pass (64 examples each
  here), the outcome checkpoint, the run's tear-down and the result reaching the driver.

Both as shares of the whole ``fit()``. The rest is training.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def start_local_ray(gpu: bool) -> None:
    """A local Ray with the sweep's worker environment (``orchestrator.sweep.WORKER_ENV``); once per process."""
    import logging

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    import ray

    if ray.is_initialized():
        return
    import ray.data  # noqa: F401  (its import configures its loggers; quiet them afterwards)

    from orchestrator.sweep import PREEMPTION_WATCHER_ENV, WORKER_ENV

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.init(num_cpus=os.cpu_count(), num_gpus=1 if gpu else 0, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING", runtime_env={"env_vars": {**WORKER_ENV, PREEMPTION_WATCHER_ENV: "0"}})


def measure(cfg, *, gpu: bool) -> dict:
    """One Ray Train run of ``cfg`` (a ``TrainConfig``): its wall time split into start, training and end."""
    from orchestrator.trial import TrainLaunch

    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as storage:
        launch = TrainLaunch(storage_path=str(Path(storage)), gpus_per_worker=1.0 if gpu else 0.0, max_failures=0)
        called = time.time()
        result = launch.fit(cfg, "overhead-trial", forward=False)
        returned = time.time()
    final = dict(result.return_value or {})
    began, ended = final["train_began_at"], final["train_ended_at"]
    total = returned - called
    return {
        "total_s": total,
        "start_to_first_step_s": began - called,
        "training_s": ended - began,
        "last_step_to_result_s": returned - ended,
        "start_share": (began - called) / total,
        "end_share": (returned - ended) / total,
        "train_samples_per_second": final.get("train_samples_per_second", 0.0),
    }
