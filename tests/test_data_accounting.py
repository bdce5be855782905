"""Data accounting: every part's rows read, kept and dropped (and why), a file of unknown labels refused in one
line before Ray, and the counts on the sweep's parent run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.assets import DATA_ACCOUNTING_FILE, log_data_accounting
from orchestrator.sweep import main
from orchestrator.tracking import SweepTracker
from trainables.data import UNKNOWN_LABEL_LIMIT, DataAccounting, DataUnavailable, load_raw, load_unlabelled
from trainables.tasks import XNLI

pytestmark = pytest.mark.usefixtures("isolated_hf_caches")

LABELS = ("entailment", "neutral", "contradiction")


def write_xtreme(root: Path, train: list[list[str]], *, languages=XNLI.languages, unlabelled=()) -> Path:
    """XTREME's download layout: ``train-en.tsv`` as given, two labelled dev and test rows per language."""
    root.mkdir(parents=True, exist_ok=True)

    def write(name: str, rows: list[list[str]]) -> None:
        with open(root / name, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter="\t").writerows(rows)

    write("train-en.tsv", train)
    for lang in languages:
        write(f"dev-{lang}.tsv", [[f"{lang} p1", "h1", "neutral"], [f"{lang} p2", "h2", "entailment"]])
        write(f"test-{lang}.tsv", [[f"{lang} p3", "h3", "contradiction"], [f"{lang} p4", "h4", "neutral"]])
    for lang in unlabelled:
        write(f"train-{lang}.tsv", [[f"{lang} u{i}", "h", "neutral"] for i in range(5)] + [["", "h", "neutral"]])
    return root


def labelled_rows(labels: list[str]) -> list[list[str]]:
    return [[f"premise {i}", f"hypothesis {i}", label] for i, label in enumerate(labels)]


def test_a_training_file_with_unknown_labels_is_refused_with_one_line_before_ray(tmp_path, smoke_model, capsys,
                                                                                 monkeypatch):
    import ray

    labels = [LABELS[i % 3] for i in range(40)]
    labels[1], labels[5], labels[9] = "bogus_label", "entails", "bogus_label"  # 3 of 40: 7.5 % > 1 %
    root = write_xtreme(tmp_path / "data", labelled_rows(labels))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["baseline_xnli", "--profile", "smoke", "--model", smoke_model, "--data-dir", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert str(root / "train-en.tsv") in err[0] and "3 of 40 rows" in err[0]
    assert "'bogus_label'" in err[0] and "'entails'" in err[0] and "--data-dir" in err[0]
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()


def test_a_stray_unknown_label_is_kept_out_and_counted(tmp_path):
    """One bad row in 200 (0.5 %, under the refusal's 1 %) no longer trains in silence: it is in the account."""
    assert UNKNOWN_LABEL_LIMIT == 0.01
    labels = [LABELS[i % 3] for i in range(200)]
    labels[1] = "bogus_label"
    root = write_xtreme(tmp_path, labelled_rows(labels), languages=("en", "de"))
    accounting = DataAccounting()
    raw = load_raw(XNLI, root, languages=("en", "de"), accounting=accounting)
    train = accounting.accounts["train_en"]
    assert (train.loaded, train.kept, len(raw["train_en"])) == (200, 199, 199)
    assert train.dropped == {"unknown_label": 1} and train.unknown_values == ("bogus_label",)
    assert train.origin == str(root / "train-en.tsv")
    assert "premise 1" not in raw["train_en"]["premise"]
    assert list(accounting.accounts) == ["train_en", "validation_en", "test_en", "validation_de", "test_de"]
    assert "unknown_label 1: 'bogus_label'" in accounting.render()


def test_a_file_of_only_a_few_rows_is_refused_for_one_unknown_label(tmp_path):
    """The share decides: 1 of 3 rows is a third of the file."""
    root = write_xtreme(tmp_path, labelled_rows(["neutral", "bogus_label", "entailment"]), languages=("en", "de"))
    with pytest.raises(DataUnavailable, match=r"train-en\.tsv: 1 of 3 rows \(33\.3%\).*'bogus_label'") as caught:
        load_raw(XNLI, root, languages=("en", "de"))
    assert "\n" not in str(caught.value)


def test_dropped_no_gold_rows_are_counted_and_the_counts_reach_the_parent_run(tmp_path):
    """MultiNLI's "-" (no gold label) rows are dropped by design, not refused: counted, printed and logged."""
    labels = ["neutral", "-", "entailment", "-", "contradiction", "-", "neutral", "entailment", "", "neutral"]
    rows = labelled_rows(labels)
    rows[2][0] = ""  # an empty premise: kept, and counted as such
    root = write_xtreme(tmp_path / "data", rows, languages=("en", "de"), unlabelled=("de",))
    accounting = DataAccounting()
    load_raw(XNLI, root, languages=("en", "de"), accounting=accounting)
    load_unlabelled(XNLI, root, ["de"], accounting=accounting)
    train = accounting.accounts["train_en"]
    assert (train.loaded, train.kept) == (10, 6)
    assert train.dropped == {"no_gold_label": 3, "missing_label": 1} and train.empty_text == 1
    unlabelled = accounting.accounts["unlabelled_de"]
    assert (unlabelled.loaded, unlabelled.kept, unlabelled.dropped, unlabelled.empty_text) == (6, 6, {}, 1)
    assert accounting.totals()["loaded"] == 10 + 4 * 2 + 6 and accounting.totals()["dropped"] == 4
    text = accounting.render()
    assert text.splitlines()[0] == ("data: 6 parts, 24 rows loaded, 20 kept, 4 dropped "
                                    "(no_gold_label 3, missing_label 1)")
    assert "no_gold_label 3; missing_label 1" in text

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = SweepTracker(uri, "accounting")
    tracker.open_parent(None, name="sweep-test", tags={"stage": "sweep"})
    log_data_accounting(tracker, accounting, tmp_path)
    client = MlflowClient(uri)
    params = client.get_run(tracker.parent_run_id).data.params
    assert params["data.loaded_rows"] == "24" and params["data.kept_rows"] == "20"
    assert params["data.dropped_rows"] == "4" and params["data.dropped.no_gold_label"] == "3"
    assert params["data.dropped.missing_label"] == "1" and params["data.dropped.unknown_label"] == "0"
    assert params["data.empty_text_rows"] == "2"
    local = client.download_artifacts(tracker.parent_run_id, DATA_ACCOUNTING_FILE, str(tmp_path / "download"))
    table = {row["part"]: row for row in csv.DictReader(io.StringIO(Path(local).read_text()))}
    assert set(table) == {"train_en", "validation_en", "test_en", "validation_de", "test_de", "unlabelled_de"}
    assert (table["train_en"]["loaded"], table["train_en"]["kept"], table["train_en"]["no_gold_label"]) == ("10", "6",
                                                                                                         "3")
    assert table["test_de"]["dropped"] == "0"
