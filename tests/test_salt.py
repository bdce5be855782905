"""SALT's parts against hand-computed values: vocabularies, candidate restriction, thresholds, mixup."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from trainables.data import load_raw, load_tokenized, make_collator
from trainables.methods.salt.codeswitch import Candidates, code_switched_copies, switch_tokens, with_original
from trainables.methods.salt.mixup import EmbeddingMixup
from trainables.methods.salt.scan import CandidateScanner, ScanPlan, scan_in_process, top_candidates
from trainables.methods.salt.vocab import WordLists, WordListsUnavailable, choose_languages, language_vocab
from smoke import build_smoke_data, build_smoke_wordlists
from trainables.tasks import get_task


# -- vocabularies and the language choice rule --------------------------------------------------

def test_language_vocab_keeps_whole_word_tokens_and_measures_overlap(smoke_model):
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    words = ["house", "river", "zqxwv", "house"]  # one not in the vocabulary, one repeated
    vocab = language_vocab(tokenizer, "xx", words)
    house, river = tokenizer.convert_tokens_to_ids(["house", "river"])
    assert set(vocab.token_ids) >= {house, river}
    assert len(tokenizer.tokenize("zqxwv")) > 1  # split into pieces: not a token of the language
    assert vocab.overlap == pytest.approx(2 / 3)  # unique words: house, river, zqxwv
    assert not vocab.char_split
    # A cased tokenizer: the capitalised form joins when it is a token of its own.
    capital = tokenizer.convert_tokens_to_ids("House")
    assert (capital in vocab.token_ids) == (capital != tokenizer.unk_token_id)


def test_language_choice_skips_character_split_languages_and_ranks_by_overlap(smoke_model, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    (tmp_path / "aa.txt").write_text("house\nriver\nzqxwv\n")  # overlap 2/3
    (tmp_path / "bb.txt").write_text("house\nriver\ngarden\n")  # overlap 1
    (tmp_path / "cc.txt").write_text("house\nzqxwv\nqqqzz\nxxqqz\n")  # overlap 1/4
    (tmp_path / "zz.txt").write_text("中国\n人民\n的\n")  # CJK words split into characters
    lists = WordLists(str(tmp_path))
    choice = choose_languages(tokenizer, ["aa", "bb", "cc", "zz", "nn"], lists, count=2)
    assert choice.chosen == ("bb", "aa")
    assert choice.vocabs["zz"].char_split
    assert choice.no_word_list == ("nn",)
    assert choose_languages(tokenizer, [], lists, given=["cc"]).chosen == ("cc",)
    with pytest.raises(WordListsUnavailable, match="nn.txt"):
        choose_languages(tokenizer, [], lists, given=["nn"])


def test_wordfreq_lists_only_count_a_language_s_own_list():
    lists = WordLists()
    assert lists.has("fr") and lists.has("de") and lists.has("en")
    assert not lists.has("sw")  # wordfreq would answer with English; that is not a Swahili list
    assert len(lists.words("fr")) == 10_000


# -- the scan ------------------------------------------------------------------------------------

def test_top_candidates_restrict_to_the_language_and_use_whole_vocabulary_probabilities():
    # Vocabulary of 6 tokens; the language has tokens 1, 2, 4; token 2 is a case variant of token 3.
    logits = torch.tensor([[0.0, 2.0, 1.0, 5.0, 0.5, 3.0],
                           [1.0, 0.0, 4.0, 0.0, 2.0, 0.0]])
    log_probs = torch.log_softmax(logits, dim=-1)
    original = torch.tensor([3, 2])
    lang_ids = torch.tensor([1, 2, 4])
    fold = torch.tensor([0, 1, 2, 2, 3, 4])  # tokens 2 and 3 fold together
    cand, prob, original_prob = top_candidates(log_probs, original, lang_ids, fold, top_k=2)
    # Position 0: the original (3) and its case variant (2) are excluded: best 1 then 4.
    assert cand[0].tolist() == [1, 4]
    expected = np.exp(np.array([2.0, 0.5])) / np.exp(logits[0].numpy()).sum()  # not renormalised
    assert prob[0].numpy() == pytest.approx(expected, rel=1e-5)
    # Position 1: the original is 2 (excluded), so 4 then 1.
    assert cand[1].tolist() == [4, 1]
    assert prob[1, 0].item() == pytest.approx(math.exp(2.0) / np.exp(logits[1].numpy()).sum(), rel=1e-5)
    # The original word as a token of the language: position 0's 3 is not one, its case variant 2 is (e^1 / Z);
    # position 1's 2 is one (e^4 / Z), more probable than the best other candidate (e^2 / Z).
    assert original_prob.numpy() == pytest.approx([math.exp(1.0) / np.exp(logits[0].numpy()).sum(),
                                                   math.exp(4.0) / np.exp(logits[1].numpy()).sum()], rel=1e-5)
    no_variant = top_candidates(log_probs, torch.tensor([0, 5]), lang_ids, fold, top_k=1)[2]
    assert no_variant.tolist() == [0.0, 0.0]  # tokens 0 and 5 are no tokens of the language


@pytest.fixture(scope="module")
def smoke_scan(smoke_root, smoke_model):
    task = get_task("xnli")
    lists = WordLists(str(build_smoke_wordlists(smoke_root)))
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    vocab = {lang: language_vocab(tokenizer, lang, lists.words(lang)).token_ids for lang in ("en", "fr")}
    raw = load_raw(task, str(build_smoke_data(task, smoke_root)), languages=["en"], eval_splits=())["train_en"]
    plan = ScanPlan(smoke_model, task.text_fields, 64, 2, vocab, "data", "model")
    return plan, raw.select(range(40)), scan_in_process(plan, raw.select(range(40)), batch_size=16)


def test_scan_aligns_candidates_with_the_training_encoding(smoke_scan, smoke_model, xnli_tokenized):
    plan, raw, table = smoke_scan
    train = load_tokenized(xnli_tokenized)["train_en"].select(range(40))
    assert table.column("row").to_pylist() == list(range(40))
    assert table.column("input_ids").to_pylist() == [list(ids) for ids in train["input_ids"]]
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    lang_ids = set(plan.vocab["fr"])
    for ids, cands in zip(table.column("input_ids").to_pylist(), table.column("cand_fr").to_pylist()):
        cands = np.asarray(cands).reshape(len(ids), 2)
        tokens = tokenizer.convert_ids_to_tokens(ids)
        for token, row in zip(tokens, cands):
            if token in tokenizer.all_special_tokens or not any(ch.isalpha() for ch in token):
                assert (row == -1).all(), token  # specials, numbers and punctuation stay
            if row[0] >= 0:
                assert set(row.tolist()) <= lang_ids  # only the language's tokens
                assert tokenizer.convert_ids_to_tokens(int(row[0])).lower() != token.lower()


def test_scan_probabilities_are_the_unmasked_mlm_on_each_sentence_alone(smoke_scan, smoke_model):
    plan, raw, table = smoke_scan
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    model = AutoModelForMaskedLM.from_pretrained(smoke_model).eval()
    hypothesis = raw[0]["hypothesis"]
    alone = tokenizer(hypothesis, return_tensors="pt")
    with torch.no_grad():
        log_probs = torch.log_softmax(model(**alone).logits[0], dim=-1)
    ids = table.column("input_ids")[0].as_py()
    cand = np.asarray(table.column("cand_en")[0].as_py()).reshape(len(ids), 2)
    prob = np.asarray(table.column("prob_en")[0].as_py()).reshape(len(ids), 2)
    start = tokenizer(raw[0]["premise"], raw[0]["hypothesis"]).sequence_ids().index(1)
    checked = 0
    for j in range(1, alone["input_ids"].shape[1] - 1):  # the hypothesis without [CLS] / [SEP]
        row = start + j - 1
        if cand[row, 0] >= 0:
            assert prob[row, 0] == pytest.approx(log_probs[j, cand[row, 0]].exp().item(), rel=1e-4)
            checked += 1
    assert checked > 0


def test_scanner_marks_multi_piece_words_as_not_substitutable(smoke_model):
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    vocab = {"en": list(range(5, 200))}
    scanner = CandidateScanner(smoke_model, ["premise", "hypothesis"], vocab, 1, 64)
    out = scanner({"row": np.array([0]), "premise": np.array(["house zqxwv river"]), "hypothesis": np.array(["cat"])})
    ids = out.column("input_ids")[0].as_py()
    cand = out.column("cand_en")[0].as_py()
    tokens = tokenizer.convert_ids_to_tokens(ids)
    pieces = len(tokenizer.tokenize("zqxwv"))
    assert tokens[:2] == ["[CLS]", "house"] and pieces > 1
    assert cand[1] >= 0  # "house": one token, a word
    assert all(c == -1 for c in cand[2:2 + pieces])  # every piece of "zqxwv"
    assert cand[0] == -1 and cand[-1] == -1  # [CLS], [SEP]


# -- thresholds -> code-switched copies ------------------------------------------------------------

def test_switch_tokens_applies_every_candidate_at_or_above_the_threshold():
    ids = np.array([10, 11, 12, 13, 14])
    cand = np.array([[20, 30], [21, 31], [-1, -1], [23, 33], [24, 34]])
    prob = np.array([[1e-6, 1e-8], [1e-8, 1e-9], [0, 0], [1e-7, 1e-7], [5e-8, 1e-9]])
    new, substituted = switch_tokens(ids, cand, prob, 1e-7)
    assert new.tolist() == [20, 11, 12, 23, 14]
    assert substituted.tolist() == [True, False, False, True, False]
    # Sampling draws among the passing candidates only (position 3: both pass; position 0: one).
    draws = {tuple(switch_tokens(ids, cand, prob, 1e-7, pick="sample", rng=np.random.default_rng(s))[0])
             for s in range(30)}
    assert {d[3] for d in draws} == {23, 33} and {d[0] for d in draws} == {20}
    assert all(d[1] == 11 and d[2] == 12 and d[4] == 14 for d in draws)


def test_code_switched_copies_keep_labels_and_source_ids(xnli_tokenized):
    train = load_tokenized(xnli_tokenized)["train_en"].select(range(3))
    ids = [list(x) for x in train["input_ids"]]
    flat = np.concatenate([np.asarray(x) for x in ids]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in ids])])
    cand = {lang: np.full((len(flat), 1), -1, dtype=np.int32) for lang in ("en", "fr")}
    prob = {lang: np.zeros((len(flat), 1), dtype=np.float32) for lang in ("en", "fr")}
    cand["fr"][1, 0], prob["fr"][1, 0] = 7, 0.5  # example 0, position 1
    cand["fr"][2, 0], prob["fr"][2, 0] = 8, 1e-9  # below any threshold used here
    cand["en"][1, 0], prob["en"][1, 0] = 9, 1e-2
    candidates = Candidates(offsets, flat, cand, prob)
    data, rates = code_switched_copies(train, candidates, {"en": 1e-3, "fr": 1e-7}, keep_original=True,
                                       candidate_rule="exclude-original")
    assert len(data) == 9  # originals + one copy per language
    assert list(data["labels"]) == list(train["labels"]) * 3
    assert list(data["source_input_ids"]) == ids * 3
    assert list(data["input_ids"])[:3] == ids
    assert data["input_ids"][3][1] == 9 and data["input_ids"][3][2:] == ids[0][2:]
    assert data["input_ids"][6][1] == 7 and data["input_ids"][6][2] == ids[0][2]
    assert rates == {"en": 1.0, "fr": 0.5}
    without, _ = code_switched_copies(train, candidates, {"fr": 1e-7}, keep_original=False,
                                      candidate_rule="exclude-original")
    assert len(without) == 3
    other = Candidates(offsets, flat + 1, cand, prob)
    with pytest.raises(ValueError, match="other training data"):
        code_switched_copies(train, other, {"fr": 1e-7}, keep_original=False, candidate_rule="paper")


def test_the_paper_rule_keeps_a_word_whose_best_token_in_the_language_is_the_word_itself():
    """Hand-made: 4 substitutable positions, k = 2. The original word's probability as a French token
    (``orig``) against the best other French token (``prob[:, 0]``), threshold 1e-7."""
    ids = np.array([10, 11, 12, 13])
    cand = np.array([[20, 30], [21, 31], [22, 32], [-1, -1]])
    prob = np.array([[1e-3, 1e-4], [1e-3, 1e-6], [1e-6, 1e-8], [0, 0]])
    orig = np.array([0.5, 1e-5, 0.0, 0.0])  # position 0: "shared" word; 1: a better other token; 2: not French
    merged, merged_prob = with_original(ids, cand, prob, orig)
    assert merged.tolist() == [[10, 20], [21, 11], [22, 32], [-1, -1]]  # the original at its rank, k kept
    assert merged_prob[:, 0].tolist() == pytest.approx([0.5, 1e-3, 1e-6, 0.0])
    new, substituted = switch_tokens(ids, merged, merged_prob, 1e-7)
    assert new.tolist() == [10, 21, 22, 13] and substituted.tolist() == [False, True, True, False]
    # The rule before (the original excluded) forces the second best, 20, at position 0.
    assert switch_tokens(ids, cand, prob, 1e-7)[0].tolist() == [20, 21, 22, 13]
    # Sampling draws among the passing candidates of the paper's list: at position 0 the word itself or 20.
    draws = {tuple(switch_tokens(ids, merged, merged_prob, 1e-7, pick="sample", rng=np.random.default_rng(s))[0])
             for s in range(40)}
    assert {d[0] for d in draws} == {10, 20} and {d[1] for d in draws} == {21, 11}


def test_the_candidate_rule_applies_to_target_languages_and_english_synonyms_exclude_the_word():
    """Through ``code_switched_copies``: one example, the same hand-made scores for en and fr."""
    import datasets

    ids = np.array([2, 10, 11, 3], dtype=np.int32)
    train = datasets.Dataset.from_dict({"input_ids": [ids.tolist()], "labels": [1]})
    cand = np.array([[-1], [20], [21], [-1]], dtype=np.int32)
    prob = np.array([[0], [1e-3], [1e-3], [0]], dtype=np.float32)
    orig = np.array([0, 0.9, 1e-4, 0], dtype=np.float32)  # the word "10" wins over 20; 21 wins over "11"
    candidates = Candidates(np.array([0, 4]), ids, {"en": cand, "fr": cand}, {"en": prob, "fr": prob},
                            {"en": orig, "fr": orig})
    data, rates = code_switched_copies(train, candidates, {"en": 1e-7, "fr": 1e-7}, keep_original=False,
                                       candidate_rule="paper")
    assert data["input_ids"] == [[2, 20, 21, 3], [2, 10, 21, 3]]  # en: synonyms exclude the word; fr: the paper
    assert rates == {"en": 1.0, "fr": 0.5}
    data, rates = code_switched_copies(train, candidates, {"en": 1e-7, "fr": 1e-7}, keep_original=False,
                                       candidate_rule="exclude-original")
    assert data["input_ids"] == [[2, 20, 21, 3], [2, 20, 21, 3]] and rates == {"en": 1.0, "fr": 1.0}


def _write_candidates(candidates: Candidates, where) -> str:
    """``candidates`` in the scan's Parquet format (what ``load_candidates`` reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = range(len(candidates))
    span = [slice(candidates.offsets[i], candidates.offsets[i + 1]) for i in rows]
    table = {"row": pa.array(list(rows), type=pa.int64()),
             "input_ids": pa.array([candidates.input_ids[s].tolist() for s in span], type=pa.list_(pa.int32()))}
    for lang in candidates.languages:
        table[f"cand_{lang}"] = pa.array([candidates.cand[lang][s].reshape(-1).tolist() for s in span],
                                         type=pa.list_(pa.int32()))
        table[f"prob_{lang}"] = pa.array([candidates.prob[lang][s].reshape(-1).tolist() for s in span],
                                         type=pa.list_(pa.float32()))
        table[f"orig_{lang}"] = pa.array([candidates.original[lang][s].tolist() for s in span],
                                         type=pa.list_(pa.float32()))
    where.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), where / "part-00000.parquet")
    return str(where)


def test_salt_trains_on_the_copies_only_unless_keep_original(xnli_tokenized, smoke_model, tmp_path):
    """The method's own defaults (``Params``): one copy per language, no original (Robust-XLT's perturb.py)."""
    from trainables.config import TrainConfig
    from trainables.methods.salt.method import Params, Salt

    assert Params().keep_original is False and Params().candidate_rule == "paper"
    data = load_tokenized(xnli_tokenized)
    train = data["train_en"]
    n, originals, labels = len(train), list(train["input_ids"]), list(train["labels"])
    flat = np.concatenate([np.asarray(x, dtype=np.int32) for x in originals])
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in originals])])
    cand = np.full((len(flat), 1), -1, dtype=np.int32)
    cand[offsets[:-1] + 1, 0] = 7  # the first word of every example has one candidate, 7
    prob = np.where(cand >= 0, 1e-2, 0).astype(np.float32)
    orig = np.zeros(len(flat), dtype=np.float32)
    path = _write_candidates(Candidates(offsets, flat, {"en": cand, "fr": cand, "de": cand},
                                        {"en": prob, "fr": prob, "de": prob}, {"en": orig, "fr": orig, "de": orig}),
                             tmp_path / "scan")
    cfg = TrainConfig(task="xnli", method="salt", model=smoke_model, tokenized_path=xnli_tokenized,
                      method_params={"candidates_path": path, "languages": ["fr", "de"]})
    salt = Salt(cfg, get_task("xnli"))
    copies = salt.train_dataset(data)
    assert len(copies) == 3 * n  # en, fr, de: a copy each, no original
    first_words = [ids[1] for ids in copies["input_ids"]]
    assert set(first_words) == {7} and all(ids[1] != 7 for ids in originals)  # every row is a switched copy
    assert list(copies["source_input_ids"]) == originals * 3 and list(copies["labels"]) == labels * 3
    kept = Salt(cfg.replace(keep_original=True), get_task("xnli")).train_dataset(data)
    assert len(kept) == 4 * n and list(kept["input_ids"])[:n] == originals  # the originals first


def test_collator_pads_source_ids_like_input_ids(smoke_model):
    collate = make_collator(smoke_model)
    batch = collate([{"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": 0, "source_input_ids": [2, 6, 3]},
                     {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": 1, "source_input_ids": [2, 3]}])
    pad = collate.tokenizer.pad_token_id
    assert batch["source_input_ids"].tolist() == [[2, 6, 3], [2, 3, pad]]
    assert batch["input_ids"].shape == batch["source_input_ids"].shape


# -- embedding mixup ---------------------------------------------------------------------------------

def test_mixup_is_the_formula_per_dimension_on_substituted_tokens_and_identity_elsewhere():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(10, 4)
    mixer = EmbeddingMixup(embedding, scope="token")
    source = torch.tensor([[1, 2, 3], [4, 5, 6]])
    switched = torch.tensor([[1, 7, 3], [8, 5, 9]])
    with mixer.mixing(source):
        torch.manual_seed(123)
        out = embedding(switched)
    torch.manual_seed(123)
    r = torch.rand(2, 3, 4)
    h_s, h_t = embedding.weight[source], embedding.weight[switched]
    expected = torch.where((switched != source)[..., None], r * h_s + (1 - r) * h_t, h_t)
    assert torch.allclose(out, expected)
    assert torch.equal(out[0, 0], h_t[0, 0]) and torch.equal(out[1, 1], h_t[1, 1])  # identity elsewhere
    assert not torch.equal(out[0, 1], h_t[0, 1])
    assert torch.equal(embedding(switched), h_t)  # outside ``mixing``: a plain embedding


def test_mixup_per_instance_shares_r_across_an_example_s_tokens_and_passes_gradients():
    embedding = torch.nn.Embedding(10, 3)
    mixer = EmbeddingMixup(embedding, scope="instance")
    source = torch.tensor([[1, 2, 3]])
    switched = torch.tensor([[4, 5, 3]])
    with mixer.mixing(source):
        out = embedding(switched)
    h_s, h_t = embedding.weight[source][0], embedding.weight[switched][0]
    r0 = (out[0, 0] - h_t[0]) / (h_s[0] - h_t[0])
    r1 = (out[0, 1] - h_t[1]) / (h_s[1] - h_t[1])
    assert torch.allclose(r0, r1, atol=1e-5) and ((r0 >= 0) & (r0 <= 1)).all()
    out.sum().backward()
    assert embedding.weight.grad[1].abs().sum() > 0  # the original token's embedding learns too


# -- the recipe in the shared loop -------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_candidates(smoke_root, smoke_model, tmp_path_factory):
    """The candidate scan of the whole smoke XNLI training set, as the sweep's cache would hold it."""
    import pyarrow.parquet as pq

    task = get_task("xnli")
    lists = WordLists(str(build_smoke_wordlists(smoke_root)))
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    vocab = {lang: language_vocab(tokenizer, lang, lists.words(lang)).token_ids for lang in ("en", "de", "fr")}
    raw = load_raw(task, str(build_smoke_data(task, smoke_root)), languages=["en"], eval_splits=())["train_en"]
    table = scan_in_process(ScanPlan(smoke_model, task.text_fields, 64, 1, vocab, "data", "model"), raw, batch_size=128)
    out = tmp_path_factory.mktemp("candidates")
    pq.write_table(table, out / "part-0.parquet")
    return str(out)


def test_salt_trains_on_the_code_switched_copies_with_mixup(smoke_train_config, smoke_candidates):
    from trainables.loop import train_and_evaluate

    cfg = smoke_train_config.replace(method="salt", max_steps=12, eval_every_steps=6, candidates_path=smoke_candidates,
                                     languages=smoke_train_config.languages, threshold_en=7.7e-4,
                                     threshold_target=7.7e-4, threshold_fr=7e-4)
    cfg.method_params["languages"] = ["de", "fr"]
    reports: list[dict] = []
    final = train_and_evaluate(cfg, reports.append)
    assert {"salt_sub_rate_en", "salt_sub_rate_de", "salt_sub_rate_fr", "test_acc_avg"} <= set(final)
    assert 0 < final["salt_sub_rate_de"] < final["salt_sub_rate_fr"] <= 1  # fr's own, lower threshold switches more
    plain: list[dict] = []
    without_mixup = train_and_evaluate(cfg.replace(mixup=False), plain.append)
    assert without_mixup["salt_sub_rate_fr"] == final["salt_sub_rate_fr"]  # same copies, same order...
    curve = [r["train_loss"] for r in reports if "train_loss" in r]
    assert len(curve) == 2 and curve != [r["train_loss"] for r in plain if "train_loss" in r]  # ...other inputs
    en_only = train_and_evaluate(cfg.replace(en_only=True, max_steps=1), lambda _: None)
    assert set(k for k in en_only if k.startswith("salt_sub_rate")) == {"salt_sub_rate_en"}
