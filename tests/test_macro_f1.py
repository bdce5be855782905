"""MARC's macro-F1: the formula by hand, the evaluator's dev and test scores, the loop's reports, the paired
bootstrap, and the results table that reports it (the BTF paper's metric)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset, DatasetDict
from mlflow.entities import Metric

from orchestrator.bootstrap import bootstrap_tests, class_counts, paired_bootstrap_macro
from orchestrator.experiments import Arm, Experiment
from orchestrator.results import collect_confirm_results, report_results
from orchestrator.tracking import PARENT_TAG, SweepTracker
from trainables.checkpoints import FolderStore
from trainables.config import TrainConfig
from trainables.data import load_raw, make_collator, tokenize_cached
from trainables.evaluation import Evaluator
from trainables.loop import local_context, train_and_evaluate
from trainables.metrics import confusion_counts, macro_f1
from smoke import build_smoke_data
from trainables.tasks import MARC, TaskSpec

# Six examples, three classes. By class: 0: tp 2, fp 0, fn 1 -> F1 4/5; 1: tp 1, fp 1, fn 1 -> 2/4;
# 2: tp 1, fp 1, fn 0 -> 2/3. Macro-F1 = (4/5 + 1/2 + 2/3) / 3 = 59/90; accuracy 4/6.
GOLD = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, 2, 2]
HAND_MACRO_F1 = Fraction(59, 90)


def confusion(gold, pred, classes: int) -> np.ndarray:
    return confusion_counts(torch.tensor(pred), torch.tensor(gold), classes).numpy()


def test_macro_f1_by_hand_and_as_scikit_learn():
    from sklearn.metrics import f1_score

    table = confusion(GOLD, PRED, 3)
    assert table.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # row = gold, column = prediction
    assert macro_f1(table) == pytest.approx(float(HAND_MACRO_F1), abs=1e-15)
    assert macro_f1(table) == pytest.approx(f1_score(GOLD, PRED, average="macro"), abs=1e-15)


def test_classes_absent_from_gold_and_predictions_do_not_count_but_a_missed_one_does():
    # Classes 3 and 4 of five occur nowhere: the same mean over the three that do.
    assert macro_f1(confusion(GOLD, PRED, 5)) == pytest.approx(float(HAND_MACRO_F1), abs=1e-15)
    # Class 2 in gold, never predicted: its F1 is 0 and counts. 0: 2·2/(3+2) = 4/5, 1: 2·2/(2+4) = 2/3, 2: 0.
    assert macro_f1(confusion([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], 3)) == pytest.approx((4 / 5 + 2 / 3) / 3)
    assert np.isnan(macro_f1(np.zeros((3, 3))))


class FirstTokenLogits:
    """Logits that say: a review's label is its first input id."""

    extra_batch_columns = ()

    def logits(self, model, batch):
        return torch.nn.functional.one_hot(batch["input_ids"][:, 0].long(), MARC.num_labels).float()


def hand_split(gold, pred) -> Dataset:
    rows = [{"input_ids": [p, 7, 7][: 1 + k % 3], "attention_mask": [1] * (1 + k % 3), "labels": g,
             "length": 1 + k % 3} for k, (g, p) in enumerate(zip(gold, pred))]
    return Dataset.from_list(rows)


def test_the_evaluator_scores_marc_by_accuracy_and_macro_f1(smoke_model):
    de_gold, de_pred = [0, 1, 2, 3, 4], [0, 1, 2, 3, 3]  # 4/5 right; F1 1, 1, 1, 2/3, 0 -> 11/15
    data = DatasetDict({"validation_en": hand_split(GOLD, PRED), "test_en": hand_split(GOLD, PRED),
                        "validation_de": hand_split(de_gold, de_pred), "test_de": hand_split(de_gold, de_pred)})
    cfg = TrainConfig(task="marc", model=smoke_model, languages=("en", "de"), eval_batch_size=2,
                      select_on="multilingual-dev")
    evaluator = Evaluator(FirstTokenLogits(), data, MARC, cfg, local_context(),
                          make_collator(smoke_model)).bind(torch.nn.Linear(1, 1))
    scores = evaluator.test_scores()
    assert scores["test_acc_en"] == pytest.approx(4 / 6) and scores["test_acc_de"] == pytest.approx(4 / 5)
    assert scores["test_macro_f1_en"] == pytest.approx(59 / 90) and scores["test_macro_f1_de"] == pytest.approx(11 / 15)
    assert scores["test_macro_f1_avg"] == pytest.approx(11 / 15)  # the targets only
    assert scores["test_macro_f1_avg_en"] == pytest.approx((59 / 90 + 11 / 15) / 2)
    assert evaluator.selection_score() == pytest.approx((4 / 6 + 4 / 5) / 2)  # selection stays on accuracy
    assert evaluator.dev_extras == pytest.approx({"dev_macro_f1_en": 59 / 90, "dev_macro_f1_de": 11 / 15,
                                                  "dev_macro_f1": (59 / 90 + 11 / 15) / 2})


def test_every_marc_evaluation_reports_macro_f1_and_the_final_one_rescores_from_the_predictions(smoke_model,
                                                                                                 tmp_path):
    from sklearn.metrics import f1_score

    raw = load_raw(MARC, build_smoke_data(MARC, tmp_path), languages=["en", "de", "fr"])
    tokenized = tokenize_cached(raw, MARC, smoke_model, 64, tmp_path / "cache")
    path = tmp_path / "predictions.parquet"
    cfg = TrainConfig(task="marc", model=smoke_model, tokenized_path=str(tokenized), languages=("en", "de", "fr"),
                      seed=1, learning_rate=1e-3, max_steps=8, eval_every_steps=4, per_device_batch_size=32,
                      max_length=64, eval_batch_size=256, predictions_path=str(path))
    reports: list[dict] = []
    final = train_and_evaluate(cfg, report=reports.append)
    curve = reports[:-1]
    assert len(curve) == 2 and all("eval_dev_macro_f1" in r and "dev_macro_f1_en" in r for r in curve)
    best = max(range(2), key=lambda k: (curve[k]["eval_dev_acc"], -k))  # the first evaluation of the best accuracy
    assert final["dev_macro_f1_en"] == final["dev_macro_f1"] == curve[best]["eval_dev_macro_f1"]
    table = pd.read_parquet(path)
    for lang, rows in table.groupby("language", observed=True):
        expected = f1_score(rows["gold"], rows["prediction"], average="macro")
        assert final[f"test_macro_f1_{lang}"] == pytest.approx(expected, abs=1e-12)
    assert final["test_macro_f1_avg"] == pytest.approx((final["test_macro_f1_de"] + final["test_macro_f1_fr"]) / 2)

    # Killed after its checkpoint at step 4 and resumed, the run ends with the same scores (the kept checkpoint's
    # dev macro-F1 is part of the checkpointed state).
    class Killed(Exception):
        """Stands for the worker process dying right after a checkpoint."""

    def kill_at_step_4(metrics):
        if metrics.get("step") == 4 and "test_acc_avg" not in metrics:
            raise Killed()

    cfg = cfg.replace(checkpoint_every_s=0.0, predictions_path="")
    with pytest.raises(Killed):
        train_and_evaluate(cfg, store=FolderStore(tmp_path / "store", kill_at_step_4))
    resumed = train_and_evaluate(cfg, store=FolderStore(tmp_path / "store"))
    wall_clock = {"train_samples_per_second", "resumed_from_step", "train_began_at", "train_ended_at",
                  "peak_host_memory_gb"}
    assert resumed["resumed_from_step"] == 4
    assert {k: v for k, v in resumed.items() if k not in wall_clock} == \
        {k: v for k, v in final.items() if k not in wall_clock}


def hand_macro_f1(pairs) -> Fraction:
    """Macro-F1 of (prediction, gold) pairs, exactly, over the classes present."""
    classes = {c for pair in pairs for c in pair}
    scores = [Fraction(2 * sum(p == g == c for p, g in pairs), sum(p == c for p, _ in pairs) + sum(g == c for _, g in pairs))
              for c in classes]
    return sum(scores, Fraction(0)) / len(scores)


def test_bootstrap_of_macro_f1_has_the_hand_difference():
    arm_pred, base_pred, gold = [0, 1, 2, 2], [1, 0, 2, 1], [0, 1, 2, 1]
    arm = hand_macro_f1(list(zip(arm_pred, gold)))
    base = hand_macro_f1(list(zip(base_pred, gold)))
    assert (arm, base) == (Fraction(7, 9), Fraction(1, 2))  # (1 + 2/3 + 2/3) / 3 and (0 + 2/4 + 1) / 3
    counts = lambda pred: class_counts(np.array(pred), np.array(gold), 3)  # noqa: E731
    test = paired_bootstrap_macro([(counts(arm_pred), counts(base_pred))], metric="macro_f1", n_resamples=500,
                                  rng=np.random.default_rng(0))
    assert test.diff == pytest.approx(float(arm - base), abs=1e-12)
    frame = pd.DataFrame([{"arm": name, "seed": 1, "language": "en", "example_id": i, "prediction": p, "gold": g}
                          for name, pred in (("base", base_pred), ("arm", arm_pred))
                          for i, (p, g) in enumerate(zip(pred, gold))])
    tests = bootstrap_tests(frame, arms=["base", "arm"], baseline_arm="base", languages=["en"], source_language="en",
                            n_resamples=500, seed=0, metric="macro_f1")
    assert tests["diff"].tolist() == pytest.approx([float(arm - base)] * 2)


TOY = TaskSpec(name="toy", hub_id="none", languages=("en", "de"), text_fields=("text",),
               label_names=("no", "yes", "maybe"), extra_metrics=("macro_f1",), table_metric="macro_f1")


def test_the_table_of_a_task_with_a_table_metric_reports_it(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "toy")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    for arm, shift in (("baseline", 0.0), ("btf", 0.05)):
        for seed in (1, 2):
            tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": arm, "seed": str(seed)}
            run_id = tracker.client.create_run(tracker.experiment_id, tags=tags).info.run_id
            metrics = {"test_acc_en": 0.9, "test_acc_de": 0.8,  # accuracy: the same for both arms
                       "test_macro_f1_en": 0.6 + shift, "test_macro_f1_de": 0.5 + shift + seed / 100}
            tracker.client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
            tracker.client.set_terminated(run_id, status="FINISHED")
    experiment = Experiment(name="toy_exp", task="toy", method="btf", description="toy",
                            arms=(Arm("baseline", "baseline"), Arm("btf", "btf", tuned=True)))
    results = collect_confirm_results(tracker, TOY)
    assert sorted(results["value"].round(4)) == sorted([0.6, 0.6, 0.51, 0.52, 0.65, 0.65, 0.56, 0.57])
    text = report_results(results, tracker, experiment, TOY, [1, 2], tmp_path / "out")
    assert text.splitlines()[0] == "toy_exp: test macro-F1 per language"
    metrics = tracker.client.get_run(tracker.parent_run_id).data.metrics
    assert metrics["btf.test_macro_f1_de.mean"] == pytest.approx(0.565)
    assert metrics["btf.test_macro_f1_avg.diff"] == pytest.approx(0.05)
    assert not [name for name in metrics if "test_acc" in name]
