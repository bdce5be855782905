"""The search as figures, drawn by Optuna from the sweep's persisted study (``<sweep_dir>/optuna.db``).

``optuna.visualization.matplotlib``'s optimization history (every trial's objective and the best so far),
hyper-parameter importances (fANOVA, seeded) and parallel coordinates (each trial's values of every
searched knob, coloured by its objective). Optuna draws through ``pyplot``, so this module selects the
Agg backend (no display) on import; its functions return Axes, whose figure is what is saved.

A search of one or two trials is normal on the smoke profile: importances need two finished trials in
which some knob took two values, parallel coordinates two finished trials; otherwise the figure is
skipped with its reason (:class:`orchestrator.figures_style.FigureSkipped`), never an error.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import optuna  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from orchestrator.figures_style import DPI, FigureSkipped  # noqa: E402

SEARCH_FIGURES = ("optimization_history", "param_importances", "parallel_coordinate")


def load_search_study(storage: str, study_name: str) -> optuna.Study:
    """The study a search persisted (``storage``: its RDB URL, ``sqlite:///<sweep_dir>/optuna.db``)."""
    return optuna.load_study(study_name=study_name, storage=storage)


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _target(scale: float) -> Callable[[FrozenTrial], float]:
    return lambda trial: trial.value * scale


def _draw(plot: Callable, study: optuna.Study, size: tuple[float, float], **kwargs):
    """Optuna's ``plot`` at our size and resolution (its figure is made inside the call); its Axes."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(), plt.rc_context({"figure.figsize": size, "figure.dpi": DPI}):
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        return plot(study, **kwargs)


def _title(ax, title: str) -> Figure:
    """Our title in place of Optuna's (which it sets on the left)."""
    ax.set_title("", loc="left")
    ax.set_title(title, fontsize=11)
    return ax.figure


def _wrap(label: str, width: int = 32) -> str:
    return textwrap.fill(label, width)


def optimization_history(study: optuna.Study, *, title: str, target_label: str, scale: float = 100.0) -> Figure:
    """Every finished trial's objective by trial number, and the best so far (a step line)."""
    trials = complete_trials(study)
    if not trials:
        raise FigureSkipped("the search has no finished trial")
    from optuna.visualization.matplotlib import plot_optimization_history

    ax = _draw(plot_optimization_history, study, (8.0, 5.0), target=_target(scale), target_name=target_label)
    numbers = [trial.number for trial in trials]
    values = [trial.value * scale for trial in trials]
    best = [max(values[:i + 1]) if study.direction.name == "MAXIMIZE" else min(values[:i + 1])
            for i in range(len(values))]
    points = ax.collections[0]
    (line,) = ax.step(numbers, best, where="post", color="tab:red", gid="best")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number (in the order the search started them)")
    ax.set_ylabel(_wrap(target_label, 40))
    ax.legend([points, line], ["one trial", "best so far"], fontsize=8, loc="lower right")
    figure = _title(ax, f"{title}: objective of each trial ({len(trials)} finished)")
    figure.set_layout_engine("constrained")
    return figure


def varying_params(study: optuna.Study) -> list[str]:
    """Searched knobs that took at least two values among the finished trials (importance needs a spread)."""
    values: dict[str, set] = {}
    for trial in complete_trials(study):
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return sorted(name for name, seen in values.items() if len(seen) >= 2)


def param_importances(study: optuna.Study, *, title: str, target_label: str, scale: float = 100.0) -> Figure:
    """fANOVA importance (seed 0) of each searched knob for the objective."""
    trials = complete_trials(study)
    finished = len(trials)
    if finished < 2:
        raise FigureSkipped(f"importances need at least 2 finished trials, the search has {finished}")
    params = varying_params(study)
    if not params:
        raise FigureSkipped("importances need a knob that took two values; every finished trial used the same")
    if len({trial.value for trial in trials}) < 2:  # fANOVA has no variance to share out ("zero total variance")
        raise FigureSkipped(f"importances need trials with different objectives; all {finished} scored "
                            f"{_target(scale)(trials[0]):g}")
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    ax = _draw(plot_param_importances, study, (8.0, max(3.5, 1.8 + 0.4 * len(params))),
               evaluator=FanovaImportanceEvaluator(seed=0), params=params, target=_target(scale),
               target_name=target_label)
    ax.set_xlabel("fANOVA importance (share of the objective's variance explained by the knob)")
    ax.set_ylabel("searched knob")
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    figure = _title(ax, f"{title}: importance of each knob ({finished} trials)\nfor {target_label}")
    figure.set_layout_engine("constrained")
    return figure


def parallel_coordinate(study: optuna.Study, *, title: str, target_label: str, scale: float = 100.0) -> Figure:
    """Each finished trial as a line through its knob values, coloured by its objective."""
    finished = len(complete_trials(study))
    if finished < 2:
        raise FigureSkipped(f"parallel coordinates need at least 2 finished trials, the search has {finished}")
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    n_axes = 1 + len({name for trial in complete_trials(study) for name in trial.params})
    ax = _draw(plot_parallel_coordinate, study, (max(8.0, 1.3 * n_axes + 3.0), 5.5), target=_target(scale),
               target_name=_wrap(target_label, 24))
    names = [label.get_text() for label in ax.get_xticklabels()]
    names[0] = "objective"  # the first axis; the colour bar names it in full
    ax.set_xticks(ax.get_xticks(), names, rotation=25, ha="right")
    figure = _title(ax, f"{title}: knob values of each trial (colour: objective)")
    figure.subplots_adjust(left=0.07, bottom=0.2, top=0.9)
    return figure


def search_drawers(storage: str, study_name: str, *, prefix: str, title: str,
                   target_label: str, scale: float = 100.0) -> dict[str, Callable[[], Figure]]:
    """``<prefix>_<figure>`` -> a function drawing it from the stored study (loaded on the first call)."""
    loaded: dict[str, optuna.Study] = {}

    def study() -> optuna.Study:
        if "study" not in loaded:
            loaded["study"] = load_search_study(storage, study_name)
        return loaded["study"]

    functions = {"optimization_history": optimization_history, "param_importances": param_importances,
                 "parallel_coordinate": parallel_coordinate}
    return {f"{prefix}_{name}": (lambda draw=draw: draw(study(), title=title, target_label=target_label, scale=scale))
            for name, draw in functions.items()}
