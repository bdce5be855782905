"""Target-language vocabularies for SALT, and the paper's rule for choosing the languages.

SALT restricts the MLM's prediction at each position to one language's tokens, "collected from
a monolingual vocabulary list" (the top 10,000 words by frequency). A word of the list becomes a
vocabulary token of that language when the model's tokenizer keeps it whole (one token, not
``[UNK]``); for cased tokenizers the capitalised form is added too, so sentence-initial words
have candidates. The languages are the three with the highest overlap between the model's
vocabulary and their word list, skipping languages the tokenizer splits into characters (the
paper's footnote 3: Chinese, Japanese, Korean with mBERT).

Word lists come from the ``wordfreq`` package (offline; the paper used Wiktionary's lists) or
from a directory of ``<lang>.txt`` files, one word per line, most frequent first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

WORD_LIST_SIZE = 10_000
CHAR_SPLIT_SHARE = 0.5  # above this share of multi-character words split into single characters


class WordListsUnavailable(Exception):
    """A needed word list is missing. ``str()`` is one line for the user."""


@dataclass(frozen=True)
class WordLists:
    """Where the frequency word lists come from: ``wordfreq`` (``directory=None``) or ``<directory>/<lang>.txt``."""

    directory: str | None = None
    size: int = WORD_LIST_SIZE

    def has(self, language: str) -> bool:
        if self.directory is not None:
            return (Path(self.directory) / f"{language}.txt").is_file()
        import wordfreq

        # Only a list of the language itself: wordfreq answers unknown codes with a near match
        # (Swahili gets English), which would make English tokens "Swahili" candidates.
        return language in wordfreq.available_languages()

    def words(self, language: str) -> list[str]:
        if not self.has(language):
            raise WordListsUnavailable(self.missing_message([language]))
        if self.directory is not None:
            lines = (Path(self.directory) / f"{language}.txt").read_text(encoding="utf-8").splitlines()
            words = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
            return words[: self.size]
        import wordfreq

        return wordfreq.top_n_list(language, self.size)

    def missing_message(self, languages: Sequence[str]) -> str:
        where = (f"no {', '.join(f'{lang}.txt' for lang in languages)} in --salt-wordlists {self.directory}"
                 if self.directory else f"the wordfreq package has no word list for {', '.join(languages)}")
        return (f"SALT needs a frequency word list per code-switching language: {where}; choose other "
                "--salt-languages or pass --salt-wordlists DIR with one <lang>.txt per language (one word per line)")

    def describe(self) -> str:
        return f"{self.directory} (<lang>.txt)" if self.directory else f"wordfreq top {self.size}"


@dataclass(frozen=True)
class LanguageVocab:
    """One language's vocabulary inside the model's: the tokens that are words of its list."""

    language: str
    token_ids: tuple[int, ...]  # sorted, unique
    overlap: float  # share of the list's words that the tokenizer keeps as one token
    char_split: bool  # the tokenizer splits the language's words into characters
    words_digest: str  # sha256 of the word list, for cache keys


def is_cased(tokenizer: Any) -> bool:
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Word")) != tokenizer.convert_tokens_to_ids(
        tokenizer.tokenize("word"))


def language_vocab(tokenizer: Any, language: str, words: Sequence[str]) -> LanguageVocab:
    """Map ``words`` onto the tokenizer's vocabulary (whole-word tokens only) and measure the overlap."""
    words = [word for word in dict.fromkeys(words) if word]  # unique, in frequency order
    unk = tokenizer.unk_token_id
    encoded = tokenizer(list(words), add_special_tokens=False)["input_ids"] if words else []
    single = [ids[0] for ids in encoded if len(ids) == 1 and ids[0] != unk]
    token_ids = set(single)
    if is_cased(tokenizer):
        capitalised = [word[:1].upper() + word[1:] for word in words]
        token_ids.update(ids[0] for ids in tokenizer(capitalised, add_special_tokens=False)["input_ids"]
                         if len(ids) == 1 and ids[0] != unk)
    multi_char = [(word, ids) for word, ids in zip(words, encoded) if len(word) >= 2]
    split_into_chars = sum(1 for word, ids in multi_char if len(ids) == len(word))
    char_split = bool(multi_char) and split_into_chars / len(multi_char) > CHAR_SPLIT_SHARE
    digest = hashlib.sha256("\n".join(words).encode()).hexdigest()
    return LanguageVocab(language=language, token_ids=tuple(sorted(token_ids)),
                         overlap=len(single) / len(words) if words else 0.0, char_split=char_split,
                         words_digest=digest)


@dataclass(frozen=True)
class LanguageChoice:
    """The outcome of the language choice rule, with the reasons, for the log and MLflow."""

    chosen: tuple[str, ...]
    vocabs: dict[str, LanguageVocab]  # every candidate that has a word list
    no_word_list: tuple[str, ...]
    rule: str  # "overlap" (the paper's rule) or "given" (--salt-languages)

    def overlap_table(self) -> str:
        rows = sorted(self.vocabs.values(), key=lambda v: -v.overlap)
        return ", ".join(f"{v.language} {v.overlap:.3f}" + (" (split into characters)" if v.char_split else "")
                         for v in rows)


def check_word_lists(lists: WordLists, candidates: Sequence[str], given: Sequence[str] | None = None) -> None:
    """Raise ``WordListsUnavailable`` unless English and every ``given`` language have a word list (without
    ``given``: at least one candidate has one), before any model or data is loaded."""
    missing = [lang for lang in ("en", *(given or ())) if not lists.has(lang)]
    if not given and not any(lists.has(lang) for lang in candidates):
        missing += list(candidates)
    if missing:
        raise WordListsUnavailable(lists.missing_message(missing))


def choose_languages(tokenizer: Any, candidates: Sequence[str], lists: WordLists, *, count: int = 3,
                     given: Sequence[str] | None = None) -> LanguageChoice:
    """The paper's rule (top ``count`` by overlap, character-split languages skipped), or ``given``.

    ``candidates`` are the benchmark's target languages. Languages named in ``given`` must have
    word lists (``WordListsUnavailable`` otherwise); in the automatic rule, a candidate without a
    list is skipped and reported.
    """
    if given:
        missing = [lang for lang in given if not lists.has(lang)]
        if missing:
            raise WordListsUnavailable(lists.missing_message(missing))
        vocabs = {lang: language_vocab(tokenizer, lang, lists.words(lang)) for lang in given}
        return LanguageChoice(tuple(given), vocabs, (), "given")
    available = [lang for lang in candidates if lists.has(lang)]
    vocabs = {lang: language_vocab(tokenizer, lang, lists.words(lang)) for lang in available}
    ranked = sorted((v for v in vocabs.values() if not v.char_split and v.token_ids),
                    key=lambda v: (-v.overlap, v.language))
    chosen = tuple(v.language for v in ranked[:count])
    if not chosen:
        raise WordListsUnavailable(lists.missing_message([lang for lang in candidates if lang not in available])
                                   if not available else "no target language has words the model keeps whole; "
                                   "pass --salt-languages")
    return LanguageChoice(chosen, vocabs, tuple(lang for lang in candidates if lang not in available), "overlap")
