"""The synthetic languages: one meaning-level word list, respelled per language in its own letters."""

from __future__ import annotations

import random
from dataclasses import dataclass

from smoke.builds import GENERATOR_VERSION

BASE_WORDS = tuple("""
    house river garden window table city forest mountain street school market letter music paper
    teacher doctor farmer child mother father friend neighbor student driver baker singer painter
    dog cat horse bird fish apple bread cheese coffee water stone bridge train boat car road
    morning evening winter summer night island village castle kitchen station office library
    red green blue small large old young quiet happy heavy bright warm cold early late long
    walks reads writes sings paints builds opens closes finds loses buys sells carries visits
    likes watches cooks cleans drives follows helps meets calls sends brings keeps leaves
    near under behind across beside inside toward around before after with above
    quickly slowly often always today again together alone almost really
    """.split())
# On top of the relation between the sentences, the labels carry cues a 2-layer, 64-wide model
# picks up fast (it learns word matching itself only slowly): a cue word opening the second
# sentence, and for NLI's neutral class a sentence about other things (the other half of the
# words). Measured with the smoke profile (batch 32, lr 3e-4..3e-3, linear decay): PAWS-X English
# ~0.97 after 76 steps; XNLI English ~0.66 after 76-228 steps (the vocabulary split is learnt
# first, the negation cue around 400 steps, then ~0.95). A cue transfers to a language as far as
# that language kept the English form of its words, which makes the per-language results differ.
_CUE_WORDS = {
    "contradiction": ("never", "nothing"),
    "different": ("instead", "rather"),
}
# Languages written in another script get all their words in a block of that script.
SCRIPT_BLOCKS = {
    "ar": (0x0621, 26),
    "ur": (0x0621, 26),
    "bg": (0x0430, 32),
    "ru": (0x0430, 32),
    "el": (0x03AC, 35),
    "hi": (0x0905, 53),
    "th": (0x0E01, 46),
    "zh": (0x4E00, 400),
    "ja": (0x3041, 80),
    "ko": (0xAC00, 400),
}
LATIN = "abcdefghijklmnopqrstuvwxyz"
# The tasks whose data the smoke vocabulary and word lists are counted on (see the module docstring).
VOCAB_TASKS = ("xnli", "pawsx")


@dataclass(frozen=True)
class Lexicon:
    """One synthetic language: its form of each English word (same meaning, maybe another spelling),
    its letters (English letter -> this language's) and the share of words it respells."""

    forms: dict[str, str]
    letters: dict[str, str] | None = None
    share: float = 0.0

    @property
    def content_words(self) -> list[str]:
        return [self.forms[word] for word in BASE_WORDS]

    def cue(self, rng: random.Random, label: str) -> str | None:
        words = _CUE_WORDS.get(label)
        return self.forms[rng.choice(words)] if words else None


def seeded_rng(*parts: object) -> random.Random:
    """A generator seeded from a string: stable across processes (unlike hash(), which is salted)."""
    return random.Random(":".join(str(part) for part in parts))


def _letter_map(lang: str, rng: random.Random) -> dict[str, str]:
    if lang in SCRIPT_BLOCKS:
        start, size = SCRIPT_BLOCKS[lang]
        letters = rng.sample([chr(start + offset) for offset in range(size)], len(LATIN))
    else:
        letters = list(LATIN)
        rng.shuffle(letters)
    return dict(zip(LATIN, letters))


def language_lexicon(lang: str, seed: int) -> Lexicon:
    """English is the base list; other languages respell a share of the words (all, for other scripts)."""
    english = [*BASE_WORDS, *(word for words in _CUE_WORDS.values() for word in words)]
    if lang == "en":
        return Lexicon({word: word for word in english}, dict(zip(LATIN, LATIN)), 0.0)
    rng = seeded_rng(GENERATOR_VERSION, seed, "lexicon", lang)
    letters = _letter_map(lang, rng)
    share = 1.0 if lang in SCRIPT_BLOCKS else rng.uniform(0.35, 0.75)
    taken = set(english)
    forms = {}
    for word in english:
        form = word
        if rng.random() < share:
            form = "".join(letters[char] for char in word)
            while form in taken:  # keep meanings distinct within the language
                form += letters["x"]
        taken.add(form)
        forms[word] = form
    return Lexicon(forms, letters, share)


