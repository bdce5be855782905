"""What loading did to each part: rows read, rows kept, rows dropped and why.

Normalisation (``trainables.data.normalise``) drops a row whose label it cannot use; until this
was counted, a training file with a wrong label column trained on what was left without a word.
Every part now yields a ``SplitAccount``; ``load_raw`` / ``load_unlabelled`` add them to a
``DataAccounting`` when given one (the sweep prints it once and logs it on its parent run).

Drop reasons:

- ``unknown_label``: a label (a tag, for token tasks) that is none of the task's names, ids or
  known aliases. More than ``UNKNOWN_LABEL_LIMIT`` of a part's rows is refused (``normalize``
  raises): that is a wrong file or label column, not a few stray rows.
- ``no_gold_label``: the label ``-``, MultiNLI's (and so XNLI's training data's) mark for a pair
  whose annotators did not agree; such rows have no gold label by design.
- ``missing_label``: an empty label, a ``ClassLabel`` id outside the names (the hub's -1), or a
  word without a tag.
- ``tag_count_mismatch``: token tasks, a sentence whose tag list is not as long as its word list.

``empty_text`` is not a drop: rows with an empty text field are kept (PAWS-X has a few), and
counted so that they show.

The counts are made while normalising, which comes before the tokenised data's content hash is
computed (``trainables.data.cache``), so they are there on a cache hit as on a miss.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field, replace

UNKNOWN_LABEL, NO_GOLD_LABEL, MISSING_LABEL, TAG_COUNT_MISMATCH = (
    "unknown_label", "no_gold_label", "missing_label", "tag_count_mismatch")
DROP_REASONS = (UNKNOWN_LABEL, NO_GOLD_LABEL, MISSING_LABEL, TAG_COUNT_MISMATCH)
UNKNOWN_LABEL_LIMIT = 0.01
"""A part that loses more than this share of its rows to unknown labels is refused (docs/methods.md, "Data")."""
EXAMPLES_SHOWN = 3  # distinct unknown values named in the refusal and the account


@dataclass(frozen=True)
class SplitAccount:
    """One part's row counts. ``part`` is its key in the loaded ``DatasetDict`` (``train_en``,
    ``unlabelled_de``); ``origin`` the file or hub config it came from."""

    origin: str
    loaded: int
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows, reasons with rows only
    empty_text: int = 0  # kept rows with an empty text field
    unknown_values: tuple[str, ...] = ()  # a few distinct unknown label values, as read
    part: str = ""

    def named(self, part: str) -> SplitAccount:
        return replace(self, part=part)

    @property
    def dropped_rows(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> str:
        """``dropped 3 (unknown_label 2: 'bogus', 'x'; no_gold_label 1)``, or ``dropped 0``."""
        reasons = []
        for reason in DROP_REASONS:
            if self.dropped.get(reason):
                examples = (": " + ", ".join(repr(v) for v in self.unknown_values)
                            if reason == UNKNOWN_LABEL and self.unknown_values else "")
                reasons.append(f"{reason} {self.dropped[reason]}{examples}")
        text = f"dropped {self.dropped_rows}" + (f" ({'; '.join(reasons)})" if reasons else "")
        return text + (f", {self.empty_text} kept with an empty text" if self.empty_text else "")


def count_rows(origin: str, loaded: int, kept: int, reasons: list[str], empty: list[bool],
               unknown_values: list[str]) -> SplitAccount:
    """A part's account from per-row drop reasons ("" = kept), empty-text flags and unknown label values
    (all per row read)."""
    counts = Counter(reasons)
    shown: dict[str, None] = {}
    for value in unknown_values:
        if value and value not in shown:
            shown[value] = None
            if len(shown) == EXAMPLES_SHOWN:
                break
    return SplitAccount(origin=origin, loaded=loaded, kept=kept,
                        dropped={reason: counts[reason] for reason in DROP_REASONS if counts[reason]},
                        empty_text=sum(1 for reason, flag in zip(reasons, empty) if flag and not reason),
                        unknown_values=tuple(shown))


def unknown_label_problem(account: SplitAccount, label_names: tuple[str, ...],
                          limit: float = UNKNOWN_LABEL_LIMIT) -> str | None:
    """The one-line refusal when more than ``limit`` of the part's rows have an unknown label, else None."""
    unknown = account.dropped.get(UNKNOWN_LABEL, 0)
    if account.loaded == 0 or unknown <= limit * account.loaded:
        return None
    examples = ", ".join(repr(value) for value in account.unknown_values)
    return (f"{account.origin}: {unknown} of {account.loaded} rows ({unknown / account.loaded:.1%}) have a label "
            f"that is not one of {', '.join(label_names)} (e.g. {examples}); more than {limit:.0%} unknown is "
            f"refused as a wrong file or label column: fix the labels or pass --data-dir DIR with the task's data")


class DataAccounting:
    """The accounts of every part a sweep loaded, in load order (a part loaded twice counts once)."""

    def __init__(self) -> None:
        self.accounts: dict[str, SplitAccount] = {}

    def add(self, account: SplitAccount) -> None:
        self.accounts[account.part] = account

    def __len__(self) -> int:
        return len(self.accounts)

    def totals(self) -> dict[str, int]:
        """Rows over every part: ``loaded``, ``kept``, ``dropped``, ``dropped.<reason>``, ``empty_text``."""
        parts = list(self.accounts.values())
        out = {"loaded": sum(a.loaded for a in parts), "kept": sum(a.kept for a in parts),
               "dropped": sum(a.dropped_rows for a in parts)}
        out.update({f"dropped.{reason}": sum(a.dropped.get(reason, 0) for a in parts) for reason in DROP_REASONS})
        out["empty_text"] = sum(a.empty_text for a in parts)
        return out

    def render(self) -> str:
        """The console block: a totals line, then one line per part."""
        totals = self.totals()
        reasons = ", ".join(f"{reason} {totals[f'dropped.{reason}']}" for reason in DROP_REASONS
                            if totals[f"dropped.{reason}"])
        lines = [f"data: {len(self)} parts, {totals['loaded']} rows loaded, {totals['kept']} kept, "
                 f"{totals['dropped']} dropped" + (f" ({reasons})" if reasons else "")]
        width = max((len(part) for part in self.accounts), default=0)
        for part, account in self.accounts.items():
            lines.append(f"  {part:<{width}}  loaded {account.loaded:>8}  kept {account.kept:>8}  "
                         f"{account.describe()}  [{account.origin}]")
        return "\n".join(lines)

    def to_csv(self) -> str:
        """One row per part: part, origin, loaded, kept, dropped, each reason's rows, empty_text, unknown_values."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["part", "origin", "loaded", "kept", "dropped", *DROP_REASONS, "empty_text",
                         "unknown_values"])
        for part, account in self.accounts.items():
            writer.writerow([part, account.origin, account.loaded, account.kept, account.dropped_rows,
                             *(account.dropped.get(reason, 0) for reason in DROP_REASONS), account.empty_text,
                             " | ".join(account.unknown_values)])
        return buffer.getvalue()
