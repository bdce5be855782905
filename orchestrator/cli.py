"""Command line: flags -> a validated ``SweepConfig``, or one line on stderr and exit code 2.

Everything a user can get wrong (an unknown experiment, a bad flag value, a search-space key
the method does not know) is caught here, before Ray starts.
"""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Any, NoReturn, Sequence

from orchestrator.config import DEFAULT_BOOTSTRAP, SEARCH_TRAINING_SEED, STAGES, Resources, SweepConfig
from orchestrator.experiments import EXPERIMENTS, Experiment, get_experiment
from orchestrator.significance import CI_METHODS, CORRECTIONS
from orchestrator.preparation import all_steps, experiment_steps
from orchestrator.profiles import PROFILES
from search_spaces.spec import SpecError, parse_dimension
from orchestrator.plan import TrialResolver, method_space, recipe_settings
from orchestrator.throughput import gpus_or_auto
from trainables.arg_types import non_negative_int, positive_float, positive_int
from trainables.config import SELECT_ON, ConfigError, TrainConfig, user_settings
from trainables.generalized import TASKS as GENERALIZED_TASKS
from trainables.methods import get_method, load_plugins
from trainables.tasks import get_task, parse_languages
from trainables.training.speed import check_speed_settings


class UsageError(Exception):
    """Bad input. ``str()`` is the one line shown to the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(f"{message} (see python -m orchestrator.sweep --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m orchestrator.sweep",
        description="Search a cross-lingual transfer method's knobs with Optuna on Ray Tune, run every arm "
                    "over the same seeds, and write paper-style tables with paired t-tests to MLflow.",
    )
    p.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--profile", choices=sorted(PROFILES), default="paper",
                   help="paper: the papers' protocol (default); smoke: tiny model and generated data, minutes on a CPU")
    p.add_argument("--model", help="HF hub id or local HF-format directory (default: the profile's)")
    p.add_argument("--data-dir", help="local copy of the benchmark (saved HF dataset, hub parquet snapshot, "
                                      "or the original TSV/JSONL files); default: the hub")
    p.add_argument("--languages", metavar="en,de,fr", help="only the source and these targets (default: all)")
    p.add_argument("--num-samples", type=non_negative_int, help="search trials (0 skips the search)")
    p.add_argument("--seeds", type=_seeds, help="number of seeds (N -> 1..N) or a comma list, e.g. 1,2,3")
    p.add_argument("--sampler-seed", "--search-seed", type=int, default=0, dest="sampler_seed",
                   help="seed of the Optuna TPE sampler (default 0)")
    p.add_argument("--search-training-seed", type=int, default=SEARCH_TRAINING_SEED,
                   help=f"training seed of the search trials, never a confirm seed (default {SEARCH_TRAINING_SEED})")
    p.add_argument("--search-seeds", type=positive_int, default=1, metavar="K",
                   help="train each search trial on K seeds (from --search-training-seed on) and score it by their "
                        "mean (default 1)")
    p.add_argument("--tune-baseline", action="store_true",
                   help="give the baseline the method's search budget (a second search) and test against it")
    p.add_argument("--best-from", action="append", type=_sweep_ids, default=[], metavar="SWEEP_ID",
                   help="reuse the best configuration of a finished search of an earlier sweep (its MLflow parent run) "
                        "for the arms of the method it tuned, instead of searching it; repeatable or comma-separated")
    p.add_argument("--select-on", choices=SELECT_ON,
                   help="checkpoint and search objective: English dev (strict zero-shot) or the mean over all dev "
                        "sets (default: the experiment's paper: multilingual-dev for xmixup_*, else en-dev)")
    p.add_argument("--asha", action="store_true", help="stop weak search trials early (ASHA)")
    p.add_argument("--arms", type=_names, default=(), help="arms to confirm, e.g. baseline,salt (default: all)")
    p.add_argument("--stages", type=_stages, default=STAGES, help="comma list of stages to run (default search,confirm)")
    p.add_argument("--gpus-per-trial", type=gpus_or_auto, help="GPUs per trial (fractions allowed) or auto (GPU default)")
    p.add_argument("--probe", action="store_true", help="measure the training rate first (cost estimate, auto)")
    p.add_argument("--workers-per-trial", type=positive_int, default=1, help="Ray Train workers per trial (DDP)")
    p.add_argument("--cpus-per-worker", type=positive_float, default=1.0, help="CPUs per Ray Train worker")
    p.add_argument("--max-concurrent-trials", type=positive_int,
                   help="trials at once (default: what the cluster fits at start; set it for an autoscaling cluster)")
    p.add_argument("--max-failures", type=non_negative_int, default=3,
                   help="restarts of a trial's training after a lost worker or node, from its last checkpoint "
                        "(default 3)")
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto); default: start a local Ray")
    p.add_argument("--ray-dashboard", action="store_true",
                   help="start the local Ray with its dashboard, on 127.0.0.1:8265 (a cluster's comes with ray start)")
    p.add_argument("--storage", help="sweep storage (default ./sweeps/<experiment>)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="SWEEP_ID",
                   help="continue an interrupted sweep (the latest one, or SWEEP_ID) without rerunning finished trials")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan and run nothing")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db in this directory)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="fix a training setting or method knob, e.g. --set num_train_epochs=2")
    p.add_argument("--space", action="append", default=[], metavar="KEY=DIM", dest="space",
                   help="replace or add a search dimension, e.g. --space learning_rate='loguniform(1e-5,5e-5)'")
    p.add_argument("--verbose", action="store_true", help="show Ray's worker logs and the notices a default run keeps quiet")
    p.add_argument("--generalized-xnli", action=argparse.BooleanOptionalAction, default=None,
                   help="after each confirm run's test pass, score its kept weights on XNLI's 15 x 15 (premise "
                        "language, hypothesis language) pairs, SALT's generalized setting (default: on for salt_xnli "
                        "in the paper profile, off otherwise)")
    stats = p.add_argument_group("statistics of the tables")
    stats.add_argument("--correction", choices=sorted(CORRECTIONS), default="holm",
                       help="multiple-comparison correction over each arm's columns (default holm)")
    stats.add_argument("--ci", choices=CI_METHODS, default="t", dest="ci_method",
                       help="95%% interval of the paired difference: t (default) or bootstrap over seeds")
    stats.add_argument("--bootstrap", type=non_negative_int, default=DEFAULT_BOOTSTRAP, metavar="N",
                       help="also test each seed by a paired bootstrap over test examples with N resamples "
                            f"(default {DEFAULT_BOOTSTRAP}; 0: off)")
    # Each preparation step's flag group (--salt-*, --xmixup-*), from the registered methods' specs.
    p.step_flags = {}
    for step in all_steps():
        known = {action.dest for action in p._actions}
        step.add_arguments(p)
        p.step_flags[step.key] = [action.dest for action in p._actions if action.dest not in known]
    return p


def parse(argv: Sequence[str] | None = None) -> SweepConfig | None:
    """Parse and validate; ``None`` means ``--list`` was handled. Raises ``UsageError``."""
    load_plugins()  # methods and experiments registered by XLT_SWEEP_PLUGINS modules
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(list_experiments())
        return None
    if not args.experiment:
        raise UsageError("name an experiment, e.g. baseline_xnli (python -m orchestrator.sweep --list)")
    if args.ray_dashboard and args.address:
        raise UsageError("--ray-dashboard starts a local Ray's dashboard; a cluster's comes with `ray start` "
                         "(`ray dashboard cluster.yaml` forwards it)")
    if args.ray_dashboard and not dashboard_installed():
        raise UsageError("--ray-dashboard needs Ray's dashboard packages: pip install -c constraints.txt -e '.[cluster]'")
    try:
        experiment = get_experiment(args.experiment, args.arms, tune_baseline=args.tune_baseline)
        languages = get_task(experiment.task, parse_languages(args.languages)).languages  # refused in one line
    except (KeyError, ValueError) as exc:
        raise UsageError(exc.args[0]) from None
    profile = PROFILES[args.profile]
    seeds = args.seeds or profile.seeds
    search_seeds = range(args.search_training_seed, args.search_training_seed + args.search_seeds)
    shared = [seed for seed in search_seeds if seed in seeds]
    if shared:
        what = (f"--search-training-seed {args.search_training_seed}" if args.search_seeds == 1 else
                f"search seeds {search_seeds.start}..{search_seeds.stop - 1} (--search-training-seed, --search-seeds) "
                f"include {', '.join(map(str, shared))}, which")
        raise UsageError(f"{what} is one of the confirm seeds {', '.join(map(str, seeds))}: the tuned arm would be "
                         "favoured on the seed it was selected on; pick another")
    user_fixed = _settings(args.settings, experiment)
    method_settings, steps_fixed = _step_settings(parser, args, experiment, profile.method_settings)
    user_fixed.update(steps_fixed)
    train_overrides = {**profile.train, **user_fixed}
    spaces = _search_spaces(args.space, experiment, profile.space, user_fixed)
    for step in experiment_steps(experiment):
        spaces = {name: step.shape_space(method_settings[step.key], space) for name, space in spaces.items()}
    space = spaces.pop("", {})
    cfg = SweepConfig(
        experiment=experiment.name,
        profile=profile.name,
        # The paper's own model where it named one (SALT: uncased mBERT); the smoke profile's is built offline.
        model=args.model or (profile.model and (experiment.model or profile.model)),
        data_dir=args.data_dir,
        languages=languages,
        num_samples=profile.num_samples if args.num_samples is None else args.num_samples,
        seeds=seeds,
        sampler_seed=args.sampler_seed,
        search_training_seed=args.search_training_seed,
        search_seeds=args.search_seeds,
        select_on=args.select_on or experiment.select_on,
        asha=args.asha,
        stages=args.stages,
        arms=args.arms,
        resources=Resources(args.gpus_per_trial, args.workers_per_trial, args.cpus_per_worker, args.address,
                            args.max_concurrent_trials, args.max_failures, args.ray_dashboard),
        storage=args.storage or f"./sweeps/{experiment.name}",
        resume=args.resume,
        dry_run=args.dry_run,
        probe=args.probe,
        tracking_uri=args.tracking_uri,
        train_overrides=train_overrides,
        space=space,
        tune_baseline=args.tune_baseline,
        spaces=spaces,
        best_from=tuple(dict.fromkeys(part for value in args.best_from for part in value)),
        correction=args.correction,
        ci_method=args.ci_method,
        bootstrap=args.bootstrap,
        method_settings=method_settings,
        verbose=args.verbose,
        generalized_xnli=_generalized(args.generalized_xnli, experiment, profile.paper_evaluations),
    )
    _check_train_settings(cfg)
    return cfg


def _generalized(flag: bool | None, experiment: Experiment, paper_evaluations: bool) -> bool:
    """--generalized-xnli / --no-generalized-xnli, else on where the paper ran it (salt_xnli, paper profile)."""
    if flag is None:
        return experiment.generalized_xnli and paper_evaluations and experiment.task in GENERALIZED_TASKS
    if flag and experiment.task not in GENERALIZED_TASKS:
        raise UsageError(f"--generalized-xnli pairs XNLI test premises and hypotheses across languages; "
                         f"{experiment.name} is a {experiment.task} experiment")
    return flag


def dashboard_installed() -> bool:
    """Ray's dashboard needs ray[default] (the ``cluster`` extra); without it ``ray.init`` raises deep inside."""
    import importlib.util

    return importlib.util.find_spec("aiohttp_cors") is not None


def list_experiments() -> str:
    width = max(len(name) for name in EXPERIMENTS)
    lines = []
    for exp in EXPERIMENTS.values():
        arms = ", ".join(arm.name for arm in exp.arms)
        lines.append(f"{exp.name:<{width}}  {exp.task:<6} {exp.description} [arms: {arms}]")
    return "\n".join(lines)


# -- validation -------------------------------------------------------------------------------

def _known_keys(experiment: Experiment) -> set[str]:
    keys = set(user_settings())
    for arm in experiment.arms:
        keys |= get_method(arm.method).knob_names()
    return keys


def _accepts(experiment: Experiment, key: str) -> bool:
    return key in user_settings() or any(get_method(arm.method).accepts(key) for arm in experiment.arms)


def _refuse_input(flag: str, key: str, experiment: Experiment) -> None:
    """A method's sweep-filled input (``Method.Inputs``, e.g. a cache path) is no user setting."""
    if key in user_settings() or any(get_method(arm.method).accepts(key) for arm in experiment.arms):
        return
    if any(key in get_method(arm.method).input_names() for arm in experiment.arms):
        raise UsageError(f"{flag} {key}: filled in by the sweep (a method input, not a setting); it cannot be set")


def _settings(pairs: list[str], experiment: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r}: write KEY=VALUE")
        _refuse_input("--set", key, experiment)
        if not _accepts(experiment, key):
            known = _known_keys(experiment)
            raise UsageError(f"--set {key}: not a setting of {experiment.name}; known: {', '.join(sorted(known))}")
        out[key] = _literal(text)
    return out


def _search_spaces(pairs: list[str], experiment: Experiment, profile_space: dict, fixed: dict) -> dict[str, dict]:
    """Every search's space, by search name ("": the main one), without the settings the user fixes.

    The main search takes every ``--space`` entry (validated against its method); a named search (the baseline's
    of --tune-baseline, a comparison's one per method) the entries its method knows and the training settings. In
    an experiment without a main search, an entry no search can use is refused."""
    searches = experiment.searches
    if all(search.name for search in searches):
        for pair in pairs:
            key = pair.partition("=")[0]
            if key and key not in user_settings() and not any(get_method(s.method).accepts(key) for s in searches):
                _refuse_input("--space", key, experiment)
                raise UsageError(f"--space {key}: no search of {experiment.name} has a setting {key!r} (its searches: "
                                 f"{', '.join(search.method for search in searches)})")
    out = {}
    for search in searches:
        own = pairs if not search.name else [
            pair for pair in pairs if pair.partition("=")[0] in user_settings()
            or get_method(search.method).accepts(pair.partition("=")[0])]
        out[search.name] = {k: v for k, v in _space(own, experiment, profile_space, method=search.method).items()
                            if k not in fixed}
    return out


def _space(pairs: list[str], experiment: Experiment, profile_space: dict, method: str | None = None) -> dict:
    """The searched space of ``method`` (default: the experiment's): its module's, the profile's
    replacements, then ``--space`` (validated against the method)."""
    method = method or experiment.method
    knobs = get_method(method)
    space = dict(method_space(method).space)
    space.update({k: v for k, v in profile_space.items() if k in space})
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--space {pair!r}: write KEY=DIMENSION, e.g. learning_rate='loguniform(1e-5,5e-5)'")
        _refuse_input("--space", key, experiment)
        if key not in user_settings() and not knobs.accepts(key):
            searchable = user_settings() | knobs.knob_names()
            raise UsageError(f"--space {key}: method {method!r} has no setting {key!r}; "
                             f"searchable: {', '.join(sorted(searchable))}")
        try:
            space[key] = parse_dimension(text)
        except SpecError as exc:
            raise UsageError(f"--space {key}: {exc}") from None
    return space


def _step_settings(parser: argparse.ArgumentParser, args: argparse.Namespace, experiment: Experiment,
                   profile_settings: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every preparation step's settings (by key), and the knobs the flags of the experiment's steps fix.

    A step's flags apply only to experiments whose arms use the step."""
    used = {step.key for step in experiment_steps(experiment)}
    settings: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    for step in all_steps():
        given = [dest for dest in parser.step_flags.get(step.key, ()) if getattr(args, dest) != parser.get_default(dest)]
        if given and step.key not in used:
            raise UsageError(f"{step.flag_prefix}* flags apply to {step.label} experiments, not {experiment.name}")
        try:
            settings[step.key] = step.settings_from_args(args, profile_settings.get(step.key, {}))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if step.key in used:
            fixed.update(step.fixed_from_args(args))
    return settings, fixed


def _check_train_settings(cfg: SweepConfig) -> None:
    """Build the training config every arm would run with, so bad values fail here."""
    experiment = get_experiment(cfg.experiment)
    resolver = TrialResolver(base=TrainConfig(task=experiment.task, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=cfg.train_overrides,
                             recipes=recipe_settings(experiment, cfg.profile))
    for arm in experiment.arms:
        try:
            train = resolver.arm_config(arm.name, seed=cfg.seeds[0]).check_types().validate()
            method = get_method(arm.method)
            method.parse_params(train.method_params)
            check_speed_settings(train, method, workers=cfg.resources.workers_per_trial)  # padding_free's limits
        except (ConfigError, TypeError) as exc:
            raise UsageError(f"arm {arm.name}: {exc}") from None
    confirmed = get_experiment(cfg.experiment, cfg.arms).confirm_arms
    if cfg.generalized_xnli and "confirm" in cfg.stages and not any(
            resolver.scores_pairs(resolver.arm_config(arm.name, seed=cfg.seeds[0])) for arm in confirmed):
        raise UsageError("--generalized-xnli: no confirmed arm can score cross-language pairs (X-Mixup's mixup "
                         "inference reads each test example's English translation); confirm the baseline too, or "
                         "drop the flag")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)


# -- argparse value types (their errors become one-line usage errors) ------------------------

def _seeds(text: str) -> tuple[int, ...]:
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(",") if part.strip())
        else:
            if (count := int(text)) < 1:
                raise ValueError
            seeds = tuple(range(1, count + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"write a count (5) or a list (1,2,3), got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return seeds


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"write distinct arm names, e.g. baseline,salt, got {text!r}")
    return names


def _sweep_ids(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    if not ids:
        raise argparse.ArgumentTypeError(f"write a sweep id, e.g. 20261122-093000, got {text!r}")
    return ids


def _stages(text: str) -> tuple[str, ...]:
    stages = tuple(part.strip() for part in text.split(",") if part.strip())
    if not stages or any(s not in STAGES for s in stages):
        raise argparse.ArgumentTypeError(f"stages are {', '.join(STAGES)}, got {text!r}")
    return tuple(s for s in STAGES if s in stages)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
