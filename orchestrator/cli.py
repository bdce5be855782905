"""Command line: flags -> a validated ``SweepConfig``, or one line on stderr and exit code 2.

Everything a user can get wrong (an unknown experiment, a bad flag value, a search-space key
the method does not know) is caught here, before Ray starts.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from orchestrator.config import STAGES, Resources, SweepConfig, TranslationSettings
from orchestrator.experiments import EXPERIMENTS, Experiment, get_experiment
from orchestrator.profiles import PROFILES
from search_spaces import get_space
from trainables.btf.mlm import BtfSettings
from search_spaces.spec import Choice, SpecError, parse_dimension
from orchestrator.plan import TrialResolver
from trainables.config import SELECT_ON, ConfigError, TrainConfig, user_settings
from trainables.methods import get_method
from trainables.salt.scan import ScanSettings


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
    p.add_argument("--num-samples", type=_non_negative_int, help="search trials (0 skips the search)")
    p.add_argument("--seeds", type=_seeds, help="number of seeds (N -> 1..N) or a comma list, e.g. 1,2,3")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the Optuna TPE sampler (default 0)")
    p.add_argument("--select-on", choices=SELECT_ON, default="en-dev",
                   help="checkpoint and search objective: English dev (strict zero-shot, default) or all dev sets")
    p.add_argument("--asha", action="store_true", help="stop weak search trials early (ASHA)")
    p.add_argument("--arms", type=_names, default=(),
                   help="comma list of arms the confirm stage runs, e.g. baseline,salt (default: every arm; "
                        "t-tests need the baseline arm)")
    p.add_argument("--stages", type=_stages, default=STAGES, help="comma list of stages to run (default search,confirm)")
    p.add_argument("--gpus-per-trial", type=_non_negative_float, help="GPUs per trial, fractional allowed "
                                                                      "(default: 1 if the cluster has GPUs, else 0)")
    p.add_argument("--workers-per-trial", type=_positive_int, default=1, help="Ray Train workers per trial (DDP)")
    p.add_argument("--cpus-per-worker", type=_positive_float, default=1.0, help="CPUs per Ray Train worker")
    p.add_argument("--max-concurrent-trials", type=_positive_int,
                   help="trials at once (default: what the cluster fits at start; set it for an autoscaling cluster)")
    p.add_argument("--max-failures", type=_non_negative_int, default=3,
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
    p.add_argument("--verbose", action="store_true", help="show Ray's worker logs")
    salt = p.add_argument_group("SALT (salt_* experiments)")
    salt.add_argument("--salt-languages", type=_languages, help="code-switching languages, e.g. fr,de,es "
                      "(default: the paper's rule, the 3 with the highest vocabulary overlap)")
    salt.add_argument("--salt-num-languages", type=_positive_int, default=3, help="how many languages the rule picks")
    salt.add_argument("--salt-wordlists", help="directory of <lang>.txt frequency word lists (default: wordfreq)")
    salt.add_argument("--salt-top-k", type=_positive_int, default=1, help="candidates kept per token and language")
    salt.add_argument("--salt-shared-threshold", action="store_true",
                      help="search one threshold for every target language (the paper) instead of one per language")
    salt.add_argument("--salt-scan-batch-size", type=_positive_int, default=64, help="training examples per scan batch")
    salt.add_argument("--salt-scan-gpus", type=_non_negative_float,
                      help="GPUs per scan actor, fractional allowed (default: 1 if the cluster has GPUs, else 0)")
    salt.add_argument("--salt-scan-concurrency", type=_positive_int,
                      help="scan actors (default: one per GPU, or one per 2 CPUs)")
    xmixup = p.add_argument_group("X-Mixup (xmixup_* experiments)")
    xmixup.add_argument("--xmixup-translations", metavar="DIR_OR_HUB_ID",
                        help="XTREME's translate-train / translate-test files (and back-translations): a local "
                             "directory or a hub dataset id (default: generated, smoke profile only)")
    xmixup.add_argument("--xmixup-layers", type=_layers,
                        help="mixup layers the search chooses from, e.g. 1,4 (default: the paper's 1,4,8,12 that "
                             "the encoder has)")
    xmixup.add_argument("--xmixup-freeze-ratio", action="store_true",
                        help="the reference code's mixup ratio: W = 1, b = 0, never trained")
    xmixup.add_argument("--xmixup-reference-sampling", action="store_true",
                        help="the reference code's scheduled sampling: p* fixed per epoch (gold English all "
                             "through epoch 1), one coin per batch")
    xmixup.add_argument("--xmixup-logit-inference", action="store_true",
                        help="average the two sides' raw logits at inference (the reference code), not probabilities")
    return p


# Flags that switch X-Mixup to the reference code's behaviour: flag -> the knob it fixes.
_REFERENCE_FLAGS = {"xmixup_freeze_ratio": ("freeze_ratio", True), "xmixup_reference_sampling": ("sampling", "reference"),
                    "xmixup_logit_inference": ("inference", "logits")}


def parse(argv: Sequence[str] | None = None) -> SweepConfig | None:
    """Parse and validate; ``None`` means ``--list`` was handled. Raises ``UsageError``."""
    args = build_parser().parse_args(argv)
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
        experiment = get_experiment(args.experiment, args.arms)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    profile = PROFILES[args.profile]
    user_fixed = {**_settings(args.settings, experiment), **_reference_switches(args, experiment)}
    train_overrides = {**profile.train, **user_fixed}
    # A setting the user fixes is no longer searched.
    space = {k: v for k, v in _space(args.space, experiment, profile.space).items() if k not in user_fixed}
    salt = _salt_settings(args, experiment)
    xmixup = _translation_settings(args, experiment)
    if xmixup.layers and "mixup_layer" in space:
        space["mixup_layer"] = Choice(xmixup.layers)
    cfg = SweepConfig(
        experiment=experiment.name,
        profile=profile.name,
        # The paper's own model where it named one (SALT: uncased mBERT); the smoke profile's is built offline.
        model=args.model or (profile.model and (experiment.model or profile.model)),
        data_dir=args.data_dir,
        num_samples=profile.num_samples if args.num_samples is None else args.num_samples,
        seeds=args.seeds or profile.seeds,
        search_seed=args.search_seed,
        select_on=args.select_on,
        asha=args.asha,
        stages=args.stages,
        arms=args.arms,
        resources=Resources(args.gpus_per_trial, args.workers_per_trial, args.cpus_per_worker, args.address,
                            args.max_concurrent_trials, args.max_failures, args.ray_dashboard),
        storage=args.storage or f"./sweeps/{experiment.name}",
        resume=args.resume,
        dry_run=args.dry_run,
        tracking_uri=args.tracking_uri,
        train_overrides=train_overrides,
        space=space,
        salt=salt,
        xmixup=xmixup,
        btf=BtfSettings(**profile.btf),
        verbose=args.verbose,
    )
    _check_train_settings(cfg)
    return cfg


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


def _settings(pairs: list[str], experiment: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r}: write KEY=VALUE")
        if not _accepts(experiment, key):
            known = _known_keys(experiment)
            raise UsageError(f"--set {key}: not a setting of {experiment.name}; known: {', '.join(sorted(known))}")
        out[key] = _literal(text)
    return out


def _space(pairs: list[str], experiment: Experiment, profile_space: dict) -> dict:
    method = experiment.method
    knobs = get_method(method)
    space = dict(get_space(method).space)
    space.update({k: v for k, v in profile_space.items() if k in space})
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--space {pair!r}: write KEY=DIMENSION, e.g. learning_rate='loguniform(1e-5,5e-5)'")
        if key not in user_settings() and not knobs.accepts(key):
            searchable = user_settings() | knobs.knob_names()
            raise UsageError(f"--space {key}: method {method!r} has no setting {key!r}; "
                             f"searchable: {', '.join(sorted(searchable))}")
        try:
            space[key] = parse_dimension(text)
        except SpecError as exc:
            raise UsageError(f"--space {key}: {exc}") from None
    return space


def _salt_settings(args: argparse.Namespace, experiment: Experiment) -> ScanSettings:
    settings = ScanSettings(languages=args.salt_languages, wordlists=args.salt_wordlists,
                            num_languages=args.salt_num_languages, top_k=args.salt_top_k,
                            batch_size=args.salt_scan_batch_size, gpus_per_actor=args.salt_scan_gpus,
                            concurrency=args.salt_scan_concurrency, shared_threshold=args.salt_shared_threshold)
    if settings != ScanSettings() and not experiment.uses("salt"):
        raise UsageError(f"--salt-* flags apply to SALT experiments, not {experiment.name}")
    if settings.wordlists and not Path(settings.wordlists).is_dir():
        raise UsageError(f"--salt-wordlists {settings.wordlists}: no such directory")
    return settings


def _reference_switches(args: argparse.Namespace, experiment: Experiment) -> dict[str, Any]:
    switches = dict(value for flag, value in _REFERENCE_FLAGS.items() if getattr(args, flag))
    if switches and not experiment.uses("xmixup"):
        raise UsageError(f"--xmixup-* flags apply to X-Mixup experiments, not {experiment.name}")
    return switches


def _translation_settings(args: argparse.Namespace, experiment: Experiment) -> TranslationSettings:
    settings = TranslationSettings(translations=args.xmixup_translations, layers=args.xmixup_layers)
    if settings != TranslationSettings() and not experiment.uses("xmixup"):
        raise UsageError(f"--xmixup-* flags apply to X-Mixup experiments, not {experiment.name}")
    return settings


def _check_train_settings(cfg: SweepConfig) -> None:
    """Build the training config every arm would run with, so bad values fail here."""
    experiment = get_experiment(cfg.experiment)
    resolver = TrialResolver(base=TrainConfig(task=experiment.task, select_on=cfg.select_on).to_dict(),
                             arms={arm.name: arm for arm in experiment.arms}, fixed=cfg.train_overrides)
    for arm in experiment.arms:
        try:
            train = _check_types(resolver.arm_config(arm.name, seed=cfg.seeds[0])).validate()
            method = get_method(arm.method)
            method.parse_params(train.method_params)
        except (ConfigError, TypeError) as exc:
            raise UsageError(f"arm {arm.name}: {exc}") from None


def _check_types(train: TrainConfig) -> TrainConfig:
    """Check that each fixed setting has its field's type (an int where an int is expected, ...)."""
    for f in dataclasses.fields(TrainConfig):
        value = getattr(train, f.name)
        expected = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,)}.get(str(f.type))
        if expected and not isinstance(value, expected) or (str(f.type) == "int" and isinstance(value, bool)):
            raise ConfigError(f"{f.name} must be of type {f.type}, got {value!r}")
    return train


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)


# -- argparse value types (their errors become one-line usage errors) ------------------------

def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _languages(text: str) -> tuple[str, ...]:
    languages = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [lang for lang in languages if not re.fullmatch(r"[a-z]{2,3}", lang)]
    if bad or not languages:
        raise argparse.ArgumentTypeError(f"write language codes, e.g. fr,de,es, got {text!r}")
    if "en" in languages:
        raise argparse.ArgumentTypeError("en is the source language (its synonyms are always scanned); name target languages")
    if len(set(languages)) != len(languages):
        raise argparse.ArgumentTypeError(f"languages repeat in {text!r}")
    return languages


def _layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"write layer numbers, e.g. 1,4,8,12, got {text!r}") from None
    if not layers or min(layers) < 1 or len(set(layers)) != len(layers):
        raise argparse.ArgumentTypeError(f"write distinct layer numbers >= 1 (1 = the first layer), got {text!r}")
    return layers


def _seeds(text: str) -> tuple[int, ...]:
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(",") if part.strip())
        else:
            count = int(text)
            if count < 1:
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


def _stages(text: str) -> tuple[str, ...]:
    stages = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(f"stages are {', '.join(STAGES)}, got {text!r}")
    return tuple(s for s in STAGES if s in stages)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
