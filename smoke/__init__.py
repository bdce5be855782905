"""The offline "smoke" profile: a tiny BERT and synthetic XNLI / PAWS-X / MARC / PAN-X data, built in seconds.

The data is in the tasks' exact schema and on disk in the ``saved`` layout, so the smoke profile
goes through the real loader, tokenizer cache and training loop — only the sizes differ.

Why the synthetic languages look the way they do: results tables should show real, graded
differences. Every language shares one meaning-level word list; English uses it as is, other
languages rewrite a fraction of the words with their own letters (all of them for languages
with another script), and all languages share names and numbers. Labels depend only on the
relation between the two sentences (copied words, a negation word, replaced words), so a
model trained on English learns them and transfers partly — more where more words are shared.
MARC reviews carry their stars in sentiment words of the same list; PAN-X sentences hold
person, organisation and place names in word-list contexts (see ``smoke.benchmarks``).

The smoke model's vocabulary is counted on the XNLI and PAWS-X data only (``smoke.lexicon.VOCAB_TASKS``), so
adding a task changes neither the model nor the existing tasks' results; the newer tasks'
words are mostly the same list's, and the rest splits into characters (all in the vocabulary).

Modules: ``lexicon`` (the synthetic languages), ``benchmarks`` (the tasks' data), ``model`` (the tiny
BERT, its vocabulary, SALT's word lists), ``translations`` (X-Mixup's translation files), ``builds``
(markers and atomic publishing). Training code never imports this package: importing it registers
``build_smoke_translations`` with X-Mixup (``use_generated_translations``), which is what the smoke
profile's ``resolve_translations(None, ..., smoke=True)`` returns.
"""

from smoke.benchmarks import build_smoke_data, examples
from smoke.builds import (
    DATA_MARKER,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    MODEL_MARKER,
    MODEL_VERSION,
)
from smoke.lexicon import BASE_WORDS
from smoke.model import build_smoke_model, build_smoke_wordlists, smoke_vocab
from smoke.translations import TRANSLATIONS_VERSION, build_smoke_translations
from trainables.methods.xmixup.translations import use_generated_translations

use_generated_translations(build_smoke_translations)

__all__ = [
    "BASE_WORDS", "DATA_MARKER", "DEFAULT_SIZES", "GENERATOR_VERSION", "MODEL_MARKER", "MODEL_VERSION",
    "TRANSLATIONS_VERSION", "build_smoke_data", "build_smoke_model", "build_smoke_translations",
    "build_smoke_wordlists", "examples", "smoke_vocab",
]
