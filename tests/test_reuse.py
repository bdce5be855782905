"""A confirm pair that trains the same configuration and seed as another is not trained twice: which
pairs are twins (from the resolved configurations), the copy of the source's run in a real local MLflow
store, and the legend line. The smoke sweeps show it end to end (tests/test_salt_sweep.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.entities import Metric

from orchestrator.experiments import get_experiment
from orchestrator.plan import TrialResolver
from orchestrator.reuse import REUSED_FROM, find_twins, identical_arm_notes, record_reused_runs
from orchestrator.tracking import PARENT_TAG, SweepTracker
from trainables.config import TrainConfig
from trainables.tasks import get_task


def _resolver(best: dict) -> TrialResolver:
    experiment = get_experiment("baseline_xnli")
    base = TrainConfig(task="xnli", languages=get_task("xnli").languages).to_dict()
    return TrialResolver(base=base, arms={arm.name: arm for arm in experiment.arms}, best=best,
                         searched_arm=experiment.searched_arm.name)


def test_the_tuned_arm_is_a_twin_of_the_baseline_only_when_the_search_kept_the_paper_setting():
    pairs = [(arm, seed) for arm in ("baseline", "baseline_tuned") for seed in (1, 2)]
    paper = _resolver({"learning_rate": TrainConfig().learning_rate, "warmup_ratio": TrainConfig().warmup_ratio})
    assert find_twins(paper, pairs) == {("baseline_tuned", 1): ("baseline", 1), ("baseline_tuned", 2): ("baseline", 2)}
    (note,) = identical_arm_notes(paper, ["baseline", "baseline_tuned"], [1, 2])
    assert note.startswith("identical arms: baseline_tuned resolves to the same configuration as baseline")
    other = _resolver({"learning_rate": 3e-5})
    assert find_twins(other, pairs) == {} and identical_arm_notes(other, ["baseline", "baseline_tuned"], [1, 2]) == ()


def test_a_twin_gets_a_finished_copy_of_its_source_run_once(tmp_path: Path):
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "reuse")
    tracker.open_parent(None, name="sweep", tags={"stage": "sweep"})
    client = tracker.client
    tags = {PARENT_TAG: tracker.parent_run_id, "stage": "confirm", "arm": "baseline", "seed": "1",
            "trial_id": "t1", "train_node": "n1"}
    source = client.create_run(tracker.experiment_id, run_name="confirm-baseline-seed1", tags=tags).info.run_id
    client.log_param(source, "learning_rate", "0.001")
    client.log_batch(source, metrics=[Metric("train_loss", 1.0 / (step + 1), 1000 + step, step) for step in range(3)]
                     + [Metric("test_acc_avg", 0.5, 2000, 3)])
    predictions = tmp_path / "predictions.parquet"
    pd.DataFrame({"prediction": [0, 1], "gold": [0, 0]}).to_parquet(predictions)
    client.log_artifact(source, str(predictions), "predictions")
    client.set_terminated(source, status="FINISHED")

    twins = {("baseline_tuned", 1): ("baseline", 1), ("baseline_tuned", 2): ("baseline", 2)}  # seed 2 never ran
    assert record_reused_runs(tracker, twins) == [("baseline_tuned", 1)]
    runs = tracker.finished_confirm_runs()
    assert set(runs) == {("baseline", 1), ("baseline_tuned", 1)}
    copy = runs[("baseline_tuned", 1)]
    assert copy.data.tags[REUSED_FROM] == source and copy.data.tags["arm"] == "baseline_tuned"
    assert copy.data.tags["train_node"] == "n1" and copy.data.params == {"learning_rate": "0.001"}
    assert copy.data.metrics == {"train_loss": 1.0 / 3, "test_acc_avg": 0.5}
    assert [(m.step, m.value) for m in client.get_metric_history(copy.info.run_id, "train_loss")] == \
        [(step, 1.0 / (step + 1)) for step in range(3)]
    assert [a.path for a in client.list_artifacts(copy.info.run_id, "predictions")] == ["predictions/predictions.parquet"]
    assert record_reused_runs(tracker, twins) == []  # a resumed sweep keeps the copy it has
