"""Three lines that came on every sweep and asked nothing of the user, each dealt with where it starts.

* Ray's raylet warning "N PYTHON worker processes have been started ... which is 4x the maximum expected
  startup concurrency (C)". The raylet starts at most C worker processes at a time, C being the local Ray's
  CPU count, and warns once the node's Python processes (less 8 it sets aside for I/O workers) reach 4 C,
  since that many usually means tasks blocked in ``ray.get`` or a leak. A trial here is several processes
  that ask for no CPU of their own: its driver (``orchestrator.trial``), the Ray Train controller of each
  of its runs and the run's workers, so on a small machine (2 CPUs: 2 trials at once, the processes of
  finished ones still exiting, the idle ones Ray keeps) the sweep crossed it by design. Fixed at the
  cause: the local Ray that the sweep starts is told how many processes to expect at once
  (``startup_concurrency``: trials at once x (workers + controller + driver), as Ray's
  ``STARTUP_CONCURRENCY_ENV``), which leaves the warning for what it is meant to catch. It also lets the raylet start
  that many at once instead of C, which they were going to be anyway. Configuration, not silencing, so
  ``--verbose`` has it too.
* Ray's token-authentication notice ("Token authentication is enabled for this Ray cluster. Set
  RAY_AUTH_MODE=disabled to opt out ..."), a WARNING on every ``ray.init`` that starts a local Ray (Ray
  turns token authentication on for it). Authentication stays as Ray set it; only that one message is
  dropped, by a filter on the logger that emits it (``quiet_known_noise``). A cluster the sweep joins with
  ``--address`` keeps whatever its owner configured. (Setting ``RAY_AUTH_MODE=token`` ourselves would
  silence it too, but only before Ray is first imported: set later, the driver and the GCS disagree on
  the mode and ``ray.init`` fails.)
* MLflow's "Creating initial MLflow database tables..." and "Updating database tables" (INFO, logger
  ``mlflow.store.db.utils``) when a sweep creates its ``mlflow.db``: that logger is raised to WARNING, so a
  migration that fails still says so.

``--verbose`` shows the last two (the sweep then leaves Ray's and MLflow's loggers as they are).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

STARTUP_CONCURRENCY_ENV = "RAY_worker_maximum_startup_concurrency"
"""Ray's setting (read by the raylet when the local Ray starts) for how many worker processes it starts at
once; the raylet warns when a node holds 4x this many Python processes."""
PROCESSES_PER_RUN_BESIDES_WORKERS = 2  # a trial's driver and its Train run's controller
TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"  # a logger's name, not an import
TOKEN_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"
MLFLOW_STORE_LOGGER = "mlflow.store.db.utils"


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``; lets every other record through."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_known_noise() -> None:
    """Silence Ray's token-auth notice and MLflow's table-creation lines in this process (idempotent).

    Call it before the MLflow store is opened and before ``ray.init``; ``--verbose`` does not call it."""
    ray_logger = logging.getLogger(TOKEN_AUTH_LOGGER)
    if not any(isinstance(f, _DropMessage) and f.prefix == TOKEN_AUTH_NOTICE for f in ray_logger.filters):
        ray_logger.addFilter(_DropMessage(TOKEN_AUTH_NOTICE))
    store_logger = logging.getLogger(MLFLOW_STORE_LOGGER)
    if store_logger.getEffectiveLevel() < logging.WARNING:
        store_logger.setLevel(logging.WARNING)


def local_cpus() -> int:
    """The CPUs this process may run on (its affinity, as a container or ``taskset`` limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_gpus() -> int:
    """The CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def startup_concurrency(trials_at_once: int, workers_per_trial: int, cpus: int) -> int:
    """How many Python processes a node of the sweep's local Ray should expect: every trial that runs at once
    brings its driver, its Train run's controller and its workers (a search trial over K seeds counts as K
    trials in ``trials_at_once``, one driver for K runs: covered). Never below Ray's own default, the CPUs."""
    return max(cpus, trials_at_once * (workers_per_trial + PROCESSES_PER_RUN_BESIDES_WORKERS))


@contextlib.contextmanager
def raylet_settings(concurrency: int) -> Iterator[None]:
    """``concurrency`` as the startup concurrency of the raylet that ``ray.init`` starts inside this block (it
    reads its environment when it starts); a value the user set in the environment is kept. The driver's own
    environment is as before afterwards."""
    if STARTUP_CONCURRENCY_ENV in os.environ:
        yield
        return
    os.environ[STARTUP_CONCURRENCY_ENV] = str(concurrency)
    try:
        yield
    finally:
        os.environ.pop(STARTUP_CONCURRENCY_ENV, None)
