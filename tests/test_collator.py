"""The CGD encoder and collator: label masks, truncation, padding-free batches, pre-encoding."""

from __future__ import annotations

import datasets
import pytest
import torch
from tokenizers import processors
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from cgd import schema
from cgd.collator import CGDCollator, CGDEncoder, encode_dataset
from cgd.data import TripletValidationError
from cgd.templates import build_messages, build_user_message
from cgd.testing import make_tiny_model, make_tiny_tokenizer

MARKER = "[... truncated ...]"
LONG_DRAFT = " ".join(f"step {i} we add apples" for i in range(120))
LONG_CRITIQUE = " ".join(f"the step {i} is wrong" for i in range(120)) + "\nConclusion: wrong"


@pytest.fixture(scope="module")
def plain_tokenizer():
    """No chat template (a base model): plain layout, target + EOS."""
    tok = make_tiny_tokenizer()
    tok.chat_template = None
    return tok


@pytest.fixture(scope="module")
def bos_tokenizer():
    """No chat template and a tokenizer that adds BOS by default (Llama-style base model)."""
    tok = make_tiny_tokenizer()
    tok.chat_template = None
    bos = "<|im_start|>"
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))]
    )
    tok.bos_token = bos
    return tok


def _loss_tokens(tok, encoded) -> str:
    return tok.decode([t for t in encoded["labels"] if t != -100])


def _prompt_len(encoded) -> int:
    return next(i for i, t in enumerate(encoded["labels"]) if t != -100)


# -- labels: exactly the target plus end-of-turn, for every method ----------------------------------


@pytest.mark.parametrize("method", list(schema.METHODS))
def test_labels_are_exactly_target_plus_end_of_turn(tiny_tokenizer, triplet_rows, method):
    spec = schema.METHODS[method]
    encoder = CGDEncoder(tiny_tokenizer, method=method)
    for row in triplet_rows[:4]:
        out = encoder.encode(row)
        n_prompt = _prompt_len(out)
        assert _loss_tokens(tiny_tokenizer, out) == row[spec.target] + "<|im_end|>"
        assert out["labels"][n_prompt:] == out["input_ids"][n_prompt:]  # one contiguous span, to the end
        assert all(t == -100 for t in out["labels"][:n_prompt])
        # The prompt is token for token what the model sees at inference.
        messages = build_messages(build_user_message(method, row))
        expected = tiny_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        expected = expected["input_ids"] if hasattr(expected, "keys") else expected  # BatchEncoding in v5
        assert out["input_ids"][:n_prompt] == list(expected)
        prompt_text = tiny_tokenizer.decode(out["input_ids"][:n_prompt])
        for name in spec.inputs:
            assert row[name] in prompt_text
        for name in {schema.QUESTION, schema.INITIAL_RESPONSE, schema.CRITIQUE} - {spec.target}:
            assert row[name] not in _loss_tokens(tiny_tokenizer, out)
    assert encoder.report.rows_out == 4 and encoder.report.rows_dropped == 0


@pytest.mark.parametrize("method", list(schema.METHODS))
def test_plain_tokenizer_labels_are_target_plus_eos(plain_tokenizer, triplet_rows, method):
    target = schema.METHODS[method].target
    out = CGDEncoder(plain_tokenizer, method=method).encode(triplet_rows[0])
    assert _loss_tokens(plain_tokenizer, out) == " " + triplet_rows[0][target] + "<|im_end|>"
    assert out["labels"][-1] == plain_tokenizer.eos_token_id
    assert plain_tokenizer.decode(out["input_ids"]).startswith("Question: ")


def test_bos_is_added_once_when_the_tokenizer_adds_one(bos_tokenizer, plain_tokenizer, triplet_rows):
    bos = bos_tokenizer.bos_token_id
    out = CGDEncoder(bos_tokenizer, method="sft").encode(triplet_rows[0])
    assert out["input_ids"][0] == bos and out["input_ids"][1] != bos and out["labels"][0] == -100
    assert CGDEncoder(plain_tokenizer, method="sft").encode(triplet_rows[0])["input_ids"][0] != bos
    # A BOS the rendered prompt already has is not doubled.
    enc = CGDEncoder(bos_tokenizer, method="sft")
    assert enc._prompt_ids(bos_tokenizer.bos_token + "Question: x")[:2] == [bos, enc._ids("Question")[0]]


def test_fast_path_tokenizes_like_the_tokenizer(tiny_tokenizer, triplet_rows):
    enc = CGDEncoder(tiny_tokenizer)
    text = tiny_tokenizer.apply_chat_template(
        build_messages(build_user_message("cgd", triplet_rows[0])), tokenize=False, add_generation_prompt=True
    )
    assert enc._backend is not None and enc._backend_agrees()
    assert enc._ids(text) == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]


def test_bad_row_is_a_clear_error(tiny_tokenizer, triplet_rows):
    row = {**triplet_rows[0], schema.REFINED_RESPONSE: ""}
    with pytest.raises(TripletValidationError, match="id='row-0'.*'refined_response'"):
        CGDEncoder(tiny_tokenizer).encode(row)


# -- truncation: draft first, then critique; the target never ----------------------------------------


def _row(triplet_rows, **fields):
    return {**triplet_rows[0], **fields}


def test_long_draft_is_cut_first_and_critique_kept(tiny_tokenizer, triplet_rows):
    row = _row(triplet_rows, initial_response=LONG_DRAFT)
    full = CGDEncoder(tiny_tokenizer, max_length=None).encode(row)
    encoder = CGDEncoder(tiny_tokenizer, max_length=len(full["input_ids"]) - 100)
    out = encoder.encode(row)
    text = tiny_tokenizer.decode(out["input_ids"])
    assert len(out["input_ids"]) <= encoder.max_length
    assert text.count(MARKER) == 1 and row[schema.CRITIQUE] in text
    assert "step 0 we add" in text and "step 119 we add apples" in text  # head and tail kept
    assert _loss_tokens(tiny_tokenizer, out) == row[schema.REFINED_RESPONSE] + "<|im_end|>"
    assert encoder.report.truncated == {"initial_response": 1}  # the critique is not cut
    assert encoder.report.tokens_cut >= 100


@pytest.mark.parametrize("fast", [True, False], ids=["rust-backend", "python-fallback"])
def test_critique_is_cut_after_the_draft(tiny_tokenizer, triplet_rows, fast):
    row = _row(triplet_rows, initial_response=LONG_DRAFT, critique=LONG_CRITIQUE)
    encoder = CGDEncoder(tiny_tokenizer, max_length=400)
    if not fast:
        encoder._backend = None  # the path for tokenizers without a Rust backend: tokenizer() and decode()
    out = encoder.encode(row)
    text = tiny_tokenizer.decode(out["input_ids"])
    assert len(out["input_ids"]) <= 400 and text.count(MARKER) == 2
    critique = text.split("Critique:\n", 1)[1]
    assert critique.startswith("the step 0") and "Conclusion: wrong<|im_end|>" in critique  # verdict kept
    assert _loss_tokens(tiny_tokenizer, out) == row[schema.REFINED_RESPONSE] + "<|im_end|>"
    assert encoder.report.truncated == {"initial_response": 1, "critique": 1}


def test_cft_never_cuts_its_target_the_critique(tiny_tokenizer, triplet_rows):
    row = _row(triplet_rows, initial_response=LONG_DRAFT, critique=LONG_CRITIQUE)
    encoder = CGDEncoder(tiny_tokenizer, method="cft", max_length=1200)
    out = encoder.encode(row)
    assert _loss_tokens(tiny_tokenizer, out) == LONG_CRITIQUE + "<|im_end|>"
    assert encoder.report.truncated == {"initial_response": 1}  # the critique is not cut


def test_target_too_long_is_dropped_and_counted(tiny_tokenizer, triplet_rows):
    encoder = CGDEncoder(tiny_tokenizer, max_length=300)
    row = _row(triplet_rows, id="too-long", refined_response=LONG_DRAFT)
    assert encoder.encode(row) is None
    assert encoder.encode(triplet_rows[1]) is not None
    s = encoder.report
    assert (s.rows_in, s.rows_out, s.dropped) == (2, 1, {"target_too_long": 1})
    assert s.examples == {"target_too_long": ["too-long"]} and "dropped" in s.summary()


def test_huge_question_is_dropped_as_prompt_too_long(tiny_tokenizer, triplet_rows):
    encoder = CGDEncoder(tiny_tokenizer, max_length=300)
    assert encoder.encode(_row(triplet_rows, question=LONG_DRAFT)) is None
    s = encoder.report
    assert s.dropped == {"prompt_too_long": 1} and s.rows_out == 0  # and no target_too_long
    assert s.truncated == {}  # truncation counts describe the rows that were kept


# -- collation ------------------------------------------------------------------------------------


def _encoded(tok, rows, method="cgd", max_length=2048):
    encoder = CGDEncoder(tok, method=method, max_length=max_length)
    return [encoder.encode(r) for r in rows]


def _collator(tok, **kwargs) -> CGDCollator:
    return CGDCollator(pad_token_id=tok.pad_token_id, **kwargs)


def test_padded_batch(tiny_tokenizer, triplet_rows):
    encoded = _encoded(tiny_tokenizer, triplet_rows[:3])
    batch = _collator(tiny_tokenizer, pad_to_multiple_of=8)(encoded)
    lengths = [len(e["input_ids"]) for e in encoded]
    assert batch["input_ids"].shape == (3, -(-max(lengths) // 8) * 8)
    assert batch["attention_mask"].sum(1).tolist() == lengths
    pads = batch["attention_mask"] == 0
    assert (batch["labels"][pads] == -100).all() and (batch["input_ids"][pads] == tiny_tokenizer.pad_token_id).all()


def test_extra_columns_pass_through_and_raw_rows_are_refused(tiny_tokenizer, triplet_rows):
    collator = _collator(tiny_tokenizer)
    encoded = _encoded(tiny_tokenizer, triplet_rows[:3])
    a = collator([{**e, "length": 1, **r} for e, r in zip(encoded, triplet_rows, strict=False)])
    b = collator(encoded)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Raw triplets, or ids without labels (TRL would learn the whole prompt), are refused with what to do.
    for rows in (triplet_rows[:2], [{"input_ids": e["input_ids"]} for e in encoded]):
        with pytest.raises(ValueError, match="row 0 of the batch has keys.*encode_dataset"):
            collator(rows)
    with pytest.raises(TypeError, match="pad_token_id must be a token id"):
        CGDCollator(tiny_tokenizer)


def test_rows_that_cannot_fit_are_counted_and_none_fitting_raises(tiny_tokenizer, triplet_rows, caplog):
    encoder = CGDEncoder(tiny_tokenizer, max_length=300)
    too_long = _row(triplet_rows, id="too-long", refined_response=LONG_DRAFT)
    out, report = encode_dataset(datasets.Dataset.from_list([triplet_rows[0], too_long, triplet_rows[1]]), encoder)
    batch = _collator(tiny_tokenizer)(list(out))
    assert batch["input_ids"].shape[0] == 2 and report.dropped == {"target_too_long": 1}
    assert "2/3 rows kept, 1 dropped (target_too_long: 1, e.g. ['too-long'])" in caplog.text
    with pytest.raises(ValueError, match="No row fits max_length=300"):
        encode_dataset(datasets.Dataset.from_list([too_long, {**too_long, "id": "x"}]), encoder)


def test_padding_free_batch_layout(tiny_tokenizer, triplet_rows):
    encoded = _encoded(tiny_tokenizer, triplet_rows[:3])
    lengths = [len(e["input_ids"]) for e in encoded]
    batch = _collator(tiny_tokenizer, padding_free=True, pad_to_multiple_of=16)(encoded)
    total = sum(lengths)
    padded = -(-total // 16) * 16
    assert padded > total  # the batch has a padding tail
    assert "attention_mask" not in batch and batch["input_ids"].shape == (1, padded)
    starts = [0, lengths[0], lengths[0] + lengths[1]]
    tail = list(range(total, padded))  # TRL's layout: each padding token is a sequence of one, at position 0
    assert (batch["position_ids"][0] == 0).nonzero().flatten().tolist() == [*starts, *tail]
    assert (batch["labels"][0, starts] == -100).all() and (batch["labels"][0, total:] == -100).all()
    assert batch["cu_seq_lens_q"].tolist() == [*starts, *tail, padded] and batch["max_length_q"] == max(lengths)
    assert batch["seq_idx"].shape == (1, padded) and batch["use_cache"] is False


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding-free"])
@pytest.mark.parametrize("method", list(schema.METHODS))
def test_collator_is_trls_collator_plus_use_cache(tiny_tokenizer, triplet_rows, method, padding_free):
    """On encoded rows, every key TRL's DataCollatorForLanguageModeling emits is identical; CGD adds use_cache only."""
    encoded = _encoded(tiny_tokenizer, triplet_rows[:5], method)
    for multiple in (None, 8, 64):
        kwargs = dict(pad_token_id=tiny_tokenizer.pad_token_id, padding_free=padding_free, pad_to_multiple_of=multiple)
        ours = CGDCollator(**kwargs)(encoded)
        theirs = DataCollatorForLanguageModeling(**kwargs)(encoded)
        assert set(ours) - set(theirs) == ({"use_cache"} if padding_free else set())
        assert set(theirs) <= set(ours)
        for key, value in theirs.items():
            if isinstance(value, torch.Tensor):
                assert value.dtype == ours[key].dtype and torch.equal(value, ours[key]), (key, multiple)
            else:
                assert value == ours[key], (key, multiple)
        # The labels are the encoder's: loss on exactly target + end-of-turn, for every row of the batch.
        labels = ours["labels"].reshape(-1).tolist()
        learned = [t for t in labels if t != -100]
        target = schema.METHODS[method].target
        expected = "".join(r[target] + "<|im_end|>" for r in triplet_rows[:5])
        # (Padding-free batches put -100 at each sequence start: a prompt token, so nothing learned is lost.)
        assert tiny_tokenizer.decode(learned) == expected


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_padding_free_and_padded_give_the_same_loss(tiny_tokenizer, triplet_rows, attn):
    """Same rows, same model: transformers builds a block-diagonal mask from position_ids (no attention_mask)."""
    model = make_tiny_model(tiny_tokenizer).eval()
    model.set_attn_implementation(attn)
    encoded = _encoded(tiny_tokenizer, triplet_rows[:4])
    padded = _collator(tiny_tokenizer)(encoded)
    free = _collator(tiny_tokenizer, padding_free=True, pad_to_multiple_of=64)(encoded)
    assert free["use_cache"] is False and free["input_ids"].shape[1] > sum(len(e["input_ids"]) for e in encoded)
    with torch.no_grad():
        loss_padded = model(**padded).loss
        loss_free = model(**free).loss
        # The test can fail: without the boundaries, or with a KV cache (transformers then skips the packed-
        # sequence mask), packed sequences attend to each other and the loss moves.
        loss_leaky = model(input_ids=free["input_ids"], labels=free["labels"]).loss
        loss_cached = model(**{**free, "use_cache": True}).loss
    torch.testing.assert_close(loss_free, loss_padded, atol=1e-5, rtol=0)
    assert abs(loss_leaky - loss_padded) > 1e-3 and abs(loss_cached - loss_padded) > 1e-3


# -- pre-encoding in a cached datasets.map -----------------------------------------------------------


def _dataset_with_drops(triplet_rows, tmp_path):
    rows = list(triplet_rows)
    rows[3] = {**rows[3], schema.REFINED_RESPONSE: LONG_DRAFT}  # target cannot fit
    rows[7] = {**rows[7], schema.INITIAL_RESPONSE: LONG_DRAFT}  # draft gets truncated
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


def test_encode_dataset_counts_filters_and_matches_the_encoder(tiny_tokenizer, triplet_rows, tmp_path):
    ds = _dataset_with_drops(triplet_rows, tmp_path)
    encoder = CGDEncoder(tiny_tokenizer, max_length=300)
    out, report = encode_dataset(ds, encoder)
    assert out.column_names == ["input_ids", "labels", "length"]
    assert (report.rows_in, report.rows_out, len(out)) == (16, 15, 15)
    assert report.dropped == {"target_too_long": 1} and report.examples == {"target_too_long": ["row-3"]}
    assert report.truncated == {"initial_response": 1} and report.tokens_cut > 0
    assert out[0]["length"] == len(out[0]["input_ids"])
    expected = [encoder.encode(r) for r in ds]
    expected = [e for e in expected if e is not None]
    assert report == encoder.report  # the map's column counts and the row-by-row counts: one shape, same numbers
    assert out["input_ids"][:] == [e["input_ids"] for e in expected]
    assert out["labels"][:] == [e["labels"] for e in expected]

    # Cached: a second call (new encoder object, same settings) reuses the cache files.
    again, report2 = encode_dataset(ds, CGDEncoder(tiny_tokenizer, max_length=300))
    assert again.cache_files == out.cache_files and report2 == report
    # A different setting is a different cache entry.
    other, _ = encode_dataset(ds, CGDEncoder(tiny_tokenizer, max_length=1000))
    assert other.cache_files != out.cache_files and len(other) == 16


def test_encode_dataset_counts_across_workers(tiny_tokenizer, triplet_rows, tmp_path):
    ds = _dataset_with_drops(triplet_rows, tmp_path)
    _, single = encode_dataset(ds, CGDEncoder(tiny_tokenizer, max_length=300))
    out, multi = encode_dataset(ds, CGDEncoder(tiny_tokenizer, max_length=301), num_proc=2)
    assert (multi.dropped, multi.truncated, len(out)) == ({"target_too_long": 1}, {"initial_response": 1}, 15)
    assert multi.rows_in == single.rows_in


def test_encode_dataset_checks_columns(tiny_tokenizer, triplet_rows):
    ds = datasets.Dataset.from_list(triplet_rows).remove_columns(schema.TEACHER_ANSWER)
    with pytest.raises(TripletValidationError, match="'teacher_answer'.*'distilled_sft'"):
        encode_dataset(ds, CGDEncoder(tiny_tokenizer, method="distilled_sft"))


def test_collator_on_encoded_dataset(tiny_tokenizer, triplet_rows):
    ds = datasets.Dataset.from_list(triplet_rows)
    out, _ = encode_dataset(ds, CGDEncoder(tiny_tokenizer))
    collator = _collator(tiny_tokenizer, padding_free=True)
    batch = collator([out[i] for i in range(4)])
    assert torch.equal(batch["input_ids"], collator(_encoded(tiny_tokenizer, triplet_rows[:4]))["input_ids"])


def test_tokenizer_truncation_state_does_not_leak_into_encoding(triplet_rows):
    """``tokenizer(..., truncation=True)`` leaves truncation on the shared Rust backend; we must not inherit it."""
    tok = make_tiny_tokenizer()
    before = CGDEncoder(tok)
    tok("x", truncation=True, max_length=4)
    assert tok.backend_tokenizer.truncation is not None
    after = CGDEncoder(tok)
    reference = CGDEncoder(make_tiny_tokenizer()).encode(triplet_rows[0])
    assert before.encode(triplet_rows[0]) == after.encode(triplet_rows[0]) == reference
    assert before.fingerprint() == after.fingerprint()


# -- special-token text inside the data is text -------------------------------------------------------

SPECIAL_ROW_TEXT = {
    schema.QUESTION: "What does <|im_end|> mean in a chat log?",
    schema.INITIAL_RESPONSE: "It ends a turn.<|im_end|>\n<|im_start|>assistant\nA fake turn.",
    schema.CRITIQUE: "Right: <|im_start|>user and <|im_end|> are markers.\nConclusion: right",
    schema.REFINED_RESPONSE: "It is written <|im_end|>; then <|im_start|>assistant\nopens a turn. \\boxed{1}",
    schema.REFERENCE_ANSWER: "<|im_end|> ends a turn.",
    schema.TEACHER_ANSWER: "The marker <|endoftext|> and <|im_end|> both stop text.",
}
#: The same row with every special-token text replaced by plain words, to count the template's own markers.
CLEAN_ROW_TEXT = {
    k: v.replace("<|im_end|>", "END").replace("<|im_start|>", "START").replace("<|endoftext|>", "EOT")
    for k, v in SPECIAL_ROW_TEXT.items()
}


def _special_ids(tok) -> set[int]:
    return {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>")}


@pytest.mark.parametrize("method", list(schema.METHODS))
def test_special_token_text_in_data_is_encoded_as_text(tiny_tokenizer, triplet_rows, method):
    """A literal `<|im_end|>` in a target must not end the turn mid-answer, nor open a fake turn in a draft."""
    spec = schema.METHODS[method]
    special = _special_ids(tiny_tokenizer)
    encoder = CGDEncoder(tiny_tokenizer, method=method)
    out = encoder.encode({**triplet_rows[0], **SPECIAL_ROW_TEXT})
    clean = encoder.encode({**triplet_rows[0], **CLEAN_ROW_TEXT})
    # Loss on exactly target + end-of-turn, the end-of-turn being the only special id learned.
    assert _loss_tokens(tiny_tokenizer, out) == SPECIAL_ROW_TEXT[spec.target] + "<|im_end|>"
    learned = [t for t in out["labels"] if t != -100]
    assert [t for t in learned if t in special] == [tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert learned[-1] == encoder.end_of_turn_id
    # The prompt holds exactly the template's special ids (as many as the row without special text) and reads back
    # as the text the model sees.
    n = _prompt_len(out)
    assert sorted(t for t in out["input_ids"][:n] if t in special) == sorted(
        t for t in clean["input_ids"][: _prompt_len(clean)] if t in special
    )
    messages = build_messages(build_user_message(method, {**triplet_rows[0], **SPECIAL_ROW_TEXT}))
    prompt = tiny_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tiny_tokenizer.decode(out["input_ids"][:n]) == prompt
    # Negative control: the tokenizer on the rendered text turns the data's markers into special ids.
    naive = tiny_tokenizer(prompt + SPECIAL_ROW_TEXT[spec.target], add_special_tokens=False)["input_ids"]
    assert sum(t in special for t in naive) > sum(t in special for t in out["input_ids"])


def test_special_token_text_in_a_truncated_draft_stays_text(tiny_tokenizer, triplet_rows):
    row = {**triplet_rows[0], **SPECIAL_ROW_TEXT, schema.INITIAL_RESPONSE: "<|im_end|> " + LONG_DRAFT + " <|im_end|>"}
    full = CGDEncoder(tiny_tokenizer, max_length=None).encode(row)
    encoder = CGDEncoder(tiny_tokenizer, max_length=len(full["input_ids"]) - 100)
    out = encoder.encode(row)
    assert encoder.report.truncated == {"initial_response": 1} and len(out["input_ids"]) <= encoder.max_length
    clean = CGDEncoder(tiny_tokenizer, max_length=None).encode({**triplet_rows[0], **CLEAN_ROW_TEXT})
    special = _special_ids(tiny_tokenizer)
    assert sorted(t for t in out["input_ids"][: _prompt_len(out)] if t in special) == sorted(
        t for t in clean["input_ids"][: _prompt_len(clean)] if t in special
    )
    assert _loss_tokens(tiny_tokenizer, out) == row[schema.REFINED_RESPONSE] + "<|im_end|>"


def test_special_token_text_with_a_trimming_template(triplet_rows):
    """Llama-3-style templates `| trim` the message; the data's place in the prompt is still found."""
    tok = make_tiny_tokenizer()
    tok.chat_template = tok.chat_template.replace("message['content']", "(message['content'] | trim)")
    row = {**triplet_rows[0], **SPECIAL_ROW_TEXT, schema.CRITIQUE: "Ends with a marker <|im_end|>\n  "}
    out = CGDEncoder(tok, method="cgd").encode(row)
    clean = CGDEncoder(tok, method="cgd").encode({**triplet_rows[0], **CLEAN_ROW_TEXT})
    special = _special_ids(tok)
    assert sum(t in special for t in out["input_ids"]) == sum(t in special for t in clean["input_ids"])
    assert _loss_tokens(tok, out) == SPECIAL_ROW_TEXT[schema.REFINED_RESPONSE] + "<|im_end|>"


def test_plain_layout_keeps_eos_text_in_the_target_as_text(plain_tokenizer, triplet_rows):
    out = CGDEncoder(plain_tokenizer, method="sft").encode({**triplet_rows[0], **SPECIAL_ROW_TEXT})
    eos = plain_tokenizer.eos_token_id
    assert out["labels"][-1] == eos and out["labels"].count(eos) == 1 and out["input_ids"].count(eos) == 1


# -- a chat template without an end-of-turn token ---------------------------------------------------

NO_MARKER_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def test_template_without_end_of_turn_token_ends_targets_with_eos(triplet_rows):
    from cgd.collator import end_of_turn

    tok = make_tiny_tokenizer()
    tok.chat_template = NO_MARKER_TEMPLATE
    token_id, written_by_template = end_of_turn(tok)
    # Without the check, the last token of the rendered turn is the word of the answer ("answer").
    assert tok("answer", add_special_tokens=False)["input_ids"][-1] != token_id
    assert (token_id, written_by_template) == (tok.eos_token_id, False)
    encoder = CGDEncoder(tok, method="cgd")
    out = encoder.encode(triplet_rows[0])
    assert out["labels"][-1] == tok.eos_token_id and encoder.append_eos
    assert _loss_tokens(tok, out) == triplet_rows[0][schema.REFINED_RESPONSE] + tok.eos_token
    # The standard ChatML template keeps its own marker and gets nothing appended.
    assert end_of_turn(make_tiny_tokenizer()) == (make_tiny_tokenizer().convert_tokens_to_ids("<|im_end|>"), True)


def test_template_without_end_of_turn_and_no_eos_is_refused():
    tok = make_tiny_tokenizer()
    tok.chat_template = NO_MARKER_TEMPLATE
    tok.eos_token = None
    with pytest.raises(ValueError, match="without a special end-of-turn token.*eos_token"):
        CGDEncoder(tok)
