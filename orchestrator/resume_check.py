"""``--resume`` continues a sweep only with the settings it was started with: other values would mix two sweeps."""

from __future__ import annotations

from orchestrator.config import SweepConfig
from orchestrator.state import NoSweepToResume, SweepState

# Settings that define a sweep's results; resuming with other values would mix two sweeps.
_RESUME_MUST_MATCH = ("profile", "model", "data_dir", "num_samples", "seeds", "sampler_seed", "search_training_seed",
                      "search_seeds",
                      "select_on", "space", "tune_baseline", "baseline_space", "spaces", "best_from", "train_overrides",
                      "arms", "generalized_xnli", "languages")
# And every preparation step's settings (``method_settings``), but for those that only say how the work is
# spread (``PrepareStep.resume_may_differ``: they may differ on another cluster).


def check_resume_matches(cfg: SweepConfig, state: SweepState, skip: tuple[str, ...] = ()) -> None:
    """``NoSweepToResume`` (one line) when ``cfg`` differs from the resumed sweep's settings (but for ``skip``)."""
    from orchestrator.preparation import all_steps

    now = cfg.to_dict()
    pairs = [(key, state.config[key], now[key]) for key in _RESUME_MUST_MATCH if key in state.config and key not in skip]
    started = state.config.get("method_settings", {})
    for step in all_steps():
        if step.key in started and step.key in now["method_settings"]:
            pairs.append((step.key, *({k: v for k, v in d.items() if k not in step.resume_may_differ}
                                      for d in (started[step.key], now["method_settings"][step.key]))))
    for key, before, after in pairs:
        if before != after:
            raise NoSweepToResume(f"--resume {state.sweep_id}: it was started with {key}={before!r}, "
                                  f"not {after!r}; resume with the flags it was started with")
