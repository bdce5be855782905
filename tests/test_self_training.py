"""The self-training recipe end to end in one process, on the smoke model and data.

``run_self_training`` is handed the same three callables the trial driver gives it, but
in-process ones: ``fit`` runs the shared loop here (and keeps the model in a folder, as a Ray
Train checkpoint would), ``label`` runs the Ray Data labeller's class on plain batches. The Ray
path itself runs in the smoke sweeps (tests/test_btf_sweep.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import DatasetDict

from trainables.config import TrainConfig
from trainables.data import load_raw, load_tokenized, load_unlabelled, tokenize_cached
from trainables.checkpoints import FolderStore
from trainables.loop import train_and_evaluate
from trainables.methods.self_training.losses import IGNORE
from trainables.methods.self_training.pseudo_labels import label_in_process
from trainables.methods.self_training.recipe import PhaseResult, run_self_training
from smoke import build_smoke_data, build_smoke_model
from trainables.tasks import get_task


def _prepared(tmp: Path, task_name: str) -> tuple[str, str]:
    task = get_task(task_name)
    model_dir = str(build_smoke_model(tmp))
    data_dir = build_smoke_data(task, tmp)
    raw = load_raw(task, data_dir, languages=["en", "de", "fr"])
    raw = DatasetDict({**raw, **load_unlabelled(task, data_dir, ["de", "fr"])})
    return model_dir, str(tokenize_cached(raw, task, model_dir, 64, tmp / "cache"))


class InProcess:
    """``fit`` and ``label`` without Ray, recording what the recipe asked for."""

    def __init__(self, tmp: Path, task_name: str):
        self.tmp, self.task = tmp, get_task(task_name)
        self.fits: list[tuple[str, TrainConfig]] = []
        self.labelled: list[list[str]] = []
        self.reports: list[dict] = []

    def fit(self, cfg: TrainConfig, name: str) -> PhaseResult:
        self.fits.append((name, cfg))
        store = FolderStore(self.tmp / "runs" / name)  # the run's last checkpoint holds its kept model
        metrics = train_and_evaluate(cfg, store=store)
        return PhaseResult(metrics, str(store.folder) if cfg.keep_model else None)

    def label(self, parts, model_dirs):
        self.labelled.append(list(model_dirs))
        return label_in_process(parts, model_dirs, num_labels=self.task.num_labels,
                                token_task=self.task.kind == "token", agreement="unanimous")


def _config(model_dir: str, tokenized: str, task_name: str, **knobs) -> TrainConfig:
    return TrainConfig(task=task_name, method="self_training", model=model_dir, tokenized_path=tokenized,
                       languages=("en", "de", "fr"), seed=1, learning_rate=1e-3, max_steps=8,
                       per_device_batch_size=32, grad_accum_steps=1, max_length=64, eval_every_steps=8,
                       eval_batch_size=256, method_params={"btf": False, "train_languages": "de,fr",
                                                           "unlabelled_per_language": 200, **knobs})


@pytest.mark.parametrize("task_name", ["marc", "panx"])
def test_recipe_trains_teacher_then_student_on_thresholded_pseudo_labels(tmp_path, task_name):
    model_dir, tokenized = _prepared(tmp_path, task_name)
    run = InProcess(tmp_path, task_name)
    metric = get_task(task_name).metric
    result = run_self_training(_config(model_dir, tokenized, task_name, target_precision=0.5), fit=run.fit,
                               label=run.label, report=run.reports.append, work_dir=tmp_path / "pseudo")
    # One teacher (English, from the pre-trained encoder) then one student from it.
    assert [name for name, _ in run.fits] == ["teacher0", "round1-student0"]
    teacher_cfg, student_cfg = run.fits[0][1], run.fits[1][1]
    assert teacher_cfg.method == "btf" and teacher_cfg.keep_model and not teacher_cfg.method_params["btf"]
    assert student_cfg.method_params["init_path"] == str(tmp_path / "runs" / "teacher0" / "latest")
    assert run.labelled == [[str(tmp_path / "runs" / "teacher0" / "latest")]]
    # The pseudo-labelled rows: every pool row, a soft label each, hard labels only at or above the threshold.
    rows = load_tokenized(tmp_path / "pseudo" / "round1")["train"]
    assert len(rows) == 400 and result["st_pool_rows"] == 400
    threshold = result.get("st_r1_threshold", math.inf)  # absent: no cut reached the target precision
    soft = rows["soft_labels"]
    if task_name == "marc":
        confidence = np.array([max(p) for p in soft])
        hard = np.array(rows["labels"])
        assert np.all(hard[confidence < threshold - 1e-6] == IGNORE)
        kept = hard != IGNORE
        assert np.all(hard[kept] == np.array([int(np.argmax(p)) for p in soft])[kept])
        assert result["st_r1_kept"] == pytest.approx(kept.mean())
        np.testing.assert_allclose(np.array(soft).sum(1), 1.0, atol=1e-4)
    else:
        for probs, hard in zip(soft, rows["labels"]):
            probs, hard = np.array(probs), np.array(hard)
            words = probs.sum(1) > 0
            assert np.all(hard[~words] == IGNORE)  # only first sub-words carry labels
            assert np.all(hard[words & (probs.max(1) < threshold - 1e-6)] == IGNORE)
    assert 0 <= result["st_r1_dev_coverage"] <= 1
    if math.isfinite(threshold):
        assert result["st_r1_dev_precision"] >= 0.5 - 1e-9
    else:  # nothing kept: no threshold or precision reported, not inf / nan
        assert result["st_r1_dev_coverage"] == 0 and "st_r1_dev_precision" not in result
    # The trial's result is the student's, tested on every language, with the teacher's beside it.
    assert f"test_{metric}_avg" in result and f"teacher_test_{metric}_avg" in result
    assert all(f"dev_{metric}" in report for report in run.reports)


def test_voters_label_with_every_teacher_and_only_agreed_labels_are_kept(tmp_path):
    model_dir, tokenized = _prepared(tmp_path, "marc")
    run = InProcess(tmp_path, "marc")
    predictions = tmp_path / "trial" / "predictions.parquet"
    cfg = _config(model_dir, tokenized, "marc", voting=True, voters=2, rounds=2, confidence_threshold=0.3)
    result = run_self_training(cfg.replace(predictions_path=str(predictions)),
                               fit=run.fit, label=run.label, report=run.reports.append, work_dir=tmp_path / "pseudo")
    # Two teachers (seeds 1 and 1001); round 1 trains both students (they vote in round 2), round 2 only the trial's.
    assert [name for name, _ in run.fits] == ["teacher0", "teacher1", "round1-student0", "round1-student1",
                                              "round2-student0"]
    # Only the last student, whose metrics are the trial's, writes the trial's test predictions.
    assert [cfg.predictions_path for _, cfg in run.fits] == ["", "", "", "", str(predictions)]
    rows = pd.read_parquet(predictions)
    for lang in ("en", "de", "fr"):
        of_lang = rows[rows["language"] == lang]
        assert (of_lang["prediction"] == of_lang["gold"]).mean() == pytest.approx(result[f"test_acc_{lang}"], abs=1e-12)
    assert [cfg.seed for _, cfg in run.fits] == [1, 1001, 1, 1001, 1]
    assert len(run.labelled) == 2 and all(len(dirs) == 2 for dirs in run.labelled)
    assert run.labelled[1] == [str(tmp_path / "runs" / "round1-student0" / "latest"), str(tmp_path / "runs" / "round1-student1" / "latest")]
    assert result["st_r1_threshold"] == 0.3 and result["st_r2_threshold"] == 0.3  # fixed, not chosen
    assert result["st_r1_kept"] <= result["st_r1_agreed"] + 1e-9
