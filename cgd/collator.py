"""The CGD data collator: triplet rows -> model inputs whose loss falls on the target only.

:class:`CGDEncoder` turns one row into ``input_ids`` and ``labels`` for any method of
:mod:`cgd.schema` (the prompt is rendered with the student's chat template, labels are -100 on every
prompt token, and the target's tokens plus the end-of-turn token are learned). Over ``max_length`` it
shortens the inputs, never the target. :func:`encode_dataset` runs the encoder once in a cached
``datasets.map`` and counts what it kept, truncated and dropped in a :class:`cgd.data.RowReport`;
:class:`CGDCollator` is TRL's ``DataCollatorForLanguageModeling`` on the encoded rows (padded or padding-free), plus
``use_cache=False``. See docs/collator.md.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import datasets
import pyarrow.compute as pc
from datasets.fingerprint import Hasher
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from cgd.data import MAX_EXAMPLES, RowReport, TripletValidationError, check_columns
from cgd.schema import CRITIQUE, ID, INITIAL_RESPONSE, get_method
from cgd.templates import (
    PromptTemplates,
    build_user_message_spans,
    has_chat_template,
    render_completion,
    render_prompt,
)

logger = logging.getLogger(__name__)

DEFAULT_TRUNCATION_MARKER = "\n[... truncated ...]\n"

#: Input fields that may be shortened, in the order they are shortened. The question never is.
TRUNCATABLE_FIELDS: tuple[str, ...] = (INITIAL_RESPONSE, CRITIQUE)

DROP_TARGET_TOO_LONG = "target_too_long"  # target + the smallest possible prompt exceed max_length
DROP_PROMPT_TOO_LONG = "prompt_too_long"  # still too long with every shortenable field cut (huge question)

#: The ``step`` of the encoding's :class:`~cgd.data.RowReport`.
ENCODING_STEP = "CGD encoding"

#: Bumped whenever encoding changes, so cached ``map`` results from an older version are not reused.
ENCODING_VERSION = "cgd-encode-2"


def special_token_texts(tokenizer: Any) -> list[str]:
    """Texts the tokenizer turns into one special id wherever they appear in a string, longest first.

    ``all_special_tokens`` is not enough: chat markers such as ``<|im_start|>`` are often special added tokens
    without a named role.
    """
    texts = set(getattr(tokenizer, "all_special_tokens", []))
    texts |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    return sorted((t for t in texts if t), key=len, reverse=True)


def end_of_turn(tokenizer: Any, templates: PromptTemplates | None = None) -> tuple[int, bool]:
    """The token every target ends with, and whether the chat template writes it itself.

    With a chat template, it is the added token the template closes an assistant turn with (``<|im_end|>``,
    ``<|eot_id|>``, ...). A template that closes turns with plain text only (``role: content\n\n``) has no such
    token: taking the last token of its rendering would name a word of the answer, and writing that word into the
    generation config as EOS would stop the model mid-sentence. Such templates (and tokenizers without a chat
    template) fall back to the tokenizer's EOS, which the encoder then appends to every target so the model learns
    to emit it.
    """
    eos = tokenizer.eos_token_id
    if has_chat_template(tokenizer):
        target = "answer"
        completion = render_completion(tokenizer, "question", target, templates)
        at = completion.rfind(target)
        suffix = completion[at + len(target) :] if at >= 0 else ""
        ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
        added = set(getattr(tokenizer, "added_tokens_decoder", {})) | set(tokenizer.all_special_ids)
        if ids and ids[-1] in added:
            return ids[-1], True
        if eos is None:
            raise ValueError(
                "The chat template closes an assistant turn without a special end-of-turn token and the tokenizer has "
                "no eos_token, so the student could never learn to stop: set `eos_token` in the recipe, or use a chat "
                "template whose turns end with a special token."
            )
        logger.warning(
            "The chat template closes an assistant turn with %r, not with a special token; every target will end "
            "with the tokenizer's EOS %r instead, and generation stops there.",
            suffix,
            tokenizer.eos_token,
        )
        return eos, False
    if eos is None:
        raise ValueError("A tokenizer without a chat template needs an eos_token to end the target.")
    return eos, False


def _locate(text: str, value: str) -> tuple[int, int] | None:
    """Where ``value`` sits in ``text`` (as is, or trimmed as some chat templates do), or ``None``."""
    for candidate in (value, value.strip()):
        at = text.find(candidate)
        if candidate and at >= 0:
            return at, at + len(candidate)
    return None


@dataclass
class Encoded:
    """One row's encoding, or why it was dropped (``dropped`` set, ids ``None``)."""

    input_ids: list[int] | None
    labels: list[int] | None
    truncated: tuple[str, ...] = ()
    tokens_cut: int = 0
    dropped: str | None = None


class CGDEncoder:
    """Encodes triplet rows for one training method (see the module docstring).

    Prompt and completion are tokenized separately, without special tokens: the prompt exactly as the
    model sees it at inference (``apply_chat_template(..., add_generation_prompt=True)``), the completion
    as the tokens it must generate. With a chat template the template owns BOS, as in
    ``apply_chat_template(tokenize=True)``; in the plain layout a BOS is prepended when the tokenizer adds
    one by default, as ``tokenizer(text)`` would. ``add_bos`` overrides that choice; a BOS already at
    the start is never doubled.
    """

    def __init__(
        self,
        tokenizer: Any,
        method: str = "cgd",
        max_length: int | None = 2048,
        templates: PromptTemplates | None = None,
        truncation_marker: str = DEFAULT_TRUNCATION_MARKER,
        add_bos: bool | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.method = method
        self.spec = get_method(method)
        self.max_length = max_length
        self.templates = templates or PromptTemplates()
        self.truncation_marker = truncation_marker
        self.chat = has_chat_template(tokenizer)
        self.end_of_turn_id, template_ends_turn = end_of_turn(tokenizer, self.templates)
        self.append_eos = not template_ends_turn  # plain layout, or a template without an end-of-turn token
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.truncatable = tuple(f for f in TRUNCATABLE_FIELDS if f in self.spec.inputs)
        self.bos_token_id = tokenizer.bos_token_id
        self.add_bos = self._default_add_bos() if add_bos is None else bool(add_bos)
        if self.add_bos and self.bos_token_id is None:
            raise ValueError("add_bos=True but the tokenizer has no bos_token.")
        self._backend = self._own_backend(tokenizer)
        self._text_backend = self._own_backend(tokenizer, encode_special_tokens=True)
        if self._backend is not None and not self._backend_agrees():
            logger.info("The tokenizer's Rust backend disagrees with tokenizer(...); encoding through tokenizer(...).")
            self._backend = self._text_backend = None
        specials = special_token_texts(tokenizer)
        self._special_re = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._protection_works = self._protection_agrees()
        self._marker_len = len(self._text_ids(truncation_marker))
        self._overhead: int | None = None
        #: What :meth:`encode` kept, truncated and dropped (``encode_dataset`` counts from its own columns instead).
        self.report = RowReport(ENCODING_STEP)

    # -- pickling: workers and the datasets fingerprint must not see (or depend on) the live counts
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("report", None)
        state["_overhead"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.report = RowReport(ENCODING_STEP)

    def fingerprint(self) -> str:
        """A stable hash of everything that determines the encoding (for ``datasets`` caching)."""
        if self._backend is not None:  # the backend's truncation/padding state changes with use: leave it out
            state = json.loads(self._backend.to_str())
            tok = {k: v for k, v in state.items() if k not in ("truncation", "padding")}
        else:
            tok = sorted(self.tokenizer.get_vocab().items())
        return Hasher.hash(
            [
                ENCODING_VERSION,
                self.method,
                self.max_length,
                asdict(self.templates),
                self.truncation_marker,
                self.add_bos,
                self.append_eos,
                self.tokenizer.chat_template if self.chat else None,
                tok,
                type(self.tokenizer).__name__,
            ]
        )

    # -- tokenization helpers
    @staticmethod
    def _own_backend(tokenizer: Any, encode_special_tokens: bool = False) -> Any:
        """A private copy of a fast tokenizer's Rust backend, with truncation and padding off.

        Calling the backend directly skips the Python overhead of ``tokenizer(...)`` (it is most of the
        encoding time), but the shared backend carries whatever state earlier calls left on it:
        ``tokenizer(..., truncation=True)`` leaves truncation on, and transformers' ``split_special_tokens=True``
        leaves ``encode_special_tokens`` on; a copy with both set here is immune to that.
        ``encode_special_tokens=True`` gives the copy that reads special-token text as plain text.
        """
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        if backend is None:
            return None
        backend = copy.deepcopy(backend)
        backend.no_truncation()
        backend.no_padding()
        backend.encode_special_tokens = encode_special_tokens
        return backend

    def _backend_agrees(self) -> bool:
        """Whether the backend shortcut tokenizes like ``tokenizer(...)`` (a tokenizer may preprocess text in Python)."""
        probe = {name: f"Ünïcode  {name}:\n 12.5 + x^2 = \\boxed{{7}}  " for name in self.spec.inputs}
        text = self._render(probe)[1] + "Réponse finale \n\n" + (self.tokenizer.eos_token or "")
        expected = self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        return self._backend.encode(text, add_special_tokens=False).ids == list(expected)

    def _protection_agrees(self) -> bool:
        """Whether encoding data spans as text leaves a row without special-token text exactly as the tokenizer would.

        The tokenizer already encodes the text between special tokens piece by piece, so splitting only at the
        template's special tokens changes nothing for such rows; a tokenizer whose special tokens strip the
        whitespace around them would differ, and then rows with special-token text are refused instead.
        """
        if self._special_re is None:
            return True
        probe = {name: f"Some {name}:\n 12 + x^2 = \\boxed{{7}} " for name in (*self.spec.inputs, self.spec.target)}
        user, prompt, spans = self._render(probe, protect=True)
        if spans is None or self._protected_ids(prompt, spans) != self._ids(prompt):
            return False
        if not self.chat:
            return True
        completion = render_completion(self.tokenizer, user, probe[self.spec.target], self.templates, prompt=prompt)
        span = _locate(completion, probe[self.spec.target])
        return span is not None and self._protected_ids(completion, [span]) == self._ids(completion)

    def _default_add_bos(self) -> bool:
        if self.chat or self.bos_token_id is None:
            return False
        probe = self.tokenizer("a")["input_ids"]
        return bool(probe) and probe[0] == self.bos_token_id

    def _ids(self, text: str) -> list[int]:
        """Token ids of template text: special-token text becomes the special ids."""
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
        return self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]

    def _text_ids(self, text: str) -> list[int]:
        """Token ids of data text: special-token text stays text (``<|im_end|>`` -> ``<``, ``|``, ``im``, ...)."""
        if not text:
            return []
        if self._text_backend is not None:
            return self._text_backend.encode(text, add_special_tokens=False).ids
        ids = self.tokenizer(text, add_special_tokens=False, truncation=False, split_special_tokens=True)["input_ids"]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:  # transformers leaves the flag set on the shared backend after that call
            backend.encode_special_tokens = False
        return ids

    def _protected_ids(self, text: str, spans: list[tuple[int, int]]) -> list[int]:
        """Ids of ``text`` whose ``spans`` are data: split only at the template's own special tokens.

        The tokenizer itself encodes the text between special tokens piece by piece, so this is what it would give
        if it could tell the template's ``<|im_end|>`` from one quoted inside an answer.
        """
        ids: list[int] = []
        pos = 0
        for match in self._special_re.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in spans):
                continue  # special-token text inside (or across the edge of) data: text
            ids += self._text_ids(text[pos : match.start()])
            ids += self._ids(match.group())
            pos = match.end()
        return ids + self._text_ids(text[pos:])

    def _has_special_text(self, row: dict[str, Any], names: Sequence[str]) -> bool:
        if self._special_re is None:
            return False
        return any(self._special_re.search(row[name]) for name in names) or bool(
            self._special_re.search(self.truncation_marker)
        )

    def _refuse_unprotectable(self, row: dict[str, Any], why: str) -> TripletValidationError:
        names = [n for n in (*self.spec.inputs, self.spec.target) if self._special_re.search(row.get(n) or "")]
        found = sorted({m.group() for n in names for m in self._special_re.finditer(row[n])})
        return TripletValidationError(
            f"Row id={row.get(ID)!r}: field(s) {names} contain special-token text {found}, and {why}, so CGD cannot "
            "keep that text as plain text. Remove or escape it in the data, or drop such rows."
        )

    def _prompt_ids(self, prompt: str, spans: list[tuple[int, int]] | None = None) -> list[int]:
        ids = self._ids(prompt) if spans is None else self._protected_ids(prompt, spans)
        if self.add_bos and (not ids or ids[0] != self.bos_token_id):
            ids = [self.bos_token_id, *ids]
        return ids

    def _completion_ids(
        self, user: str, target: str, prompt: str, protect: bool = False, row: dict[str, Any] | None = None
    ) -> list[int]:
        """The target's ids, then the end-of-turn token; special-token text inside the target stays text."""
        eos = self.tokenizer.eos_token_id
        if not self.chat:
            return [*self._text_ids(f" {target}"), eos]  # EOS as its id, whatever its text
        completion = render_completion(self.tokenizer, user, target, self.templates, prompt=prompt)
        if protect:
            span = _locate(completion, target)
            if span is None:
                raise self._refuse_unprotectable(
                    row or {self.spec.target: target}, "the chat template changes the answer"
                )
            ids = self._protected_ids(completion, [span])
        else:
            ids = self._ids(completion)
        return [*ids, eos] if self.append_eos else ids

    def _render(self, row: dict[str, Any], protect: bool = False) -> tuple[str, str, list[tuple[int, int]] | None]:
        """User message, prompt text and, with ``protect``, the character spans of the row's values in the prompt."""
        user, spans = build_user_message_spans(self.method, row, self.templates)
        prompt = render_prompt(self.tokenizer, user, self.templates)
        if not protect:
            return user, prompt, None
        start, shift = prompt.rfind(user), 0
        if start < 0:  # templates that trim the message (Llama 3's `| trim`)
            stripped = user.strip()
            start, shift = prompt.rfind(stripped), len(user) - len(user.lstrip())
            if not stripped or start < 0:
                return user, prompt, None
            spans = [(max(s - shift, 0), min(e - shift, len(stripped))) for s, e in spans]
        return user, prompt, [(start + s, start + e) for s, e in spans]

    def minimal_prompt_length(self) -> int:
        """Tokens of the prompt with every input field empty: what any row needs besides its target."""
        if self._overhead is None:
            _, prompt, _ = self._render({name: "" for name in self.spec.inputs})
            self._overhead = len(self._prompt_ids(prompt))
        return self._overhead

    def _cut(self, text: str, keep: int) -> str:
        """``text`` reduced to its first and last tokens (``keep`` in all, more at the tail) around the marker."""
        head, tail = keep // 2, keep - keep // 2
        if self._text_backend is not None:  # cut on character offsets: no partial characters, text kept verbatim
            enc = self._text_backend.encode(text, add_special_tokens=False)
            offsets = enc.offsets
            head_text = text[: offsets[head - 1][1]] if head else ""
            tail_text = text[offsets[len(offsets) - tail][0] :] if tail else ""
        else:
            ids = self._text_ids(text)
            head_text = self.tokenizer.decode(ids[:head]) if head else ""
            tail_text = self.tokenizer.decode(ids[len(ids) - tail :]) if tail else ""
        return head_text + self.truncation_marker + tail_text

    # -- encoding
    def _check_text(self, row: dict[str, Any], name: str) -> str:
        value = row.get(name)
        if not isinstance(value, str) or (name == self.spec.target and not value.strip()):
            raise TripletValidationError(
                f"Row id={row.get(ID)!r}: field {name!r} must be a non-empty string for method {self.method!r}, "
                f"got {value!r:.80}. Validate the data first (cgd.data.validate_triplets) or drop such rows."
            )
        return value

    def encode_row(self, row: dict[str, Any]) -> Encoded:
        """Encode ``row`` without touching :attr:`report` (safe in ``datasets.map`` workers)."""
        for name in self.spec.inputs:
            self._check_text(row, name)
        target = self._check_text(row, self.spec.target)
        protect = self._has_special_text(row, (*self.spec.inputs, self.spec.target))
        if protect and not self._protection_works:
            raise self._refuse_unprotectable(row, "this tokenizer's special tokens change the text next to them")
        user, prompt, spans = self._render(row, protect)
        if protect and spans is None:
            raise self._refuse_unprotectable(row, "the chat template changes the user message")
        completion_ids = self._completion_ids(user, target, prompt, protect, row)
        limit = self.max_length
        if limit is not None and len(completion_ids) + self.minimal_prompt_length() > limit:
            return Encoded(None, None, dropped=DROP_TARGET_TOO_LONG)
        prompt_ids = self._prompt_ids(prompt, spans)
        truncated: tuple[str, ...] = ()
        tokens_cut = 0
        if limit is not None and len(prompt_ids) + len(completion_ids) > limit:
            prompt_ids, truncated, tokens_cut = self._truncate(row, prompt_ids, limit - len(completion_ids), protect)
            if prompt_ids is None:
                return Encoded(None, None, dropped=DROP_PROMPT_TOO_LONG)  # truncation counts cover kept rows
        labels = [-100] * len(prompt_ids) + completion_ids
        return Encoded(prompt_ids + completion_ids, labels, truncated, tokens_cut)

    def _truncate(
        self, row: dict[str, Any], prompt_ids: list[int], budget: int, protect: bool = False
    ) -> tuple[list[int] | None, tuple[str, ...], int]:
        """Shorten the draft, then the critique, until the prompt fits ``budget`` tokens.

        Each field keeps its head and tail tokens around the marker. Token counts of the re-rendered
        prompt can differ by a token or two from the arithmetic (merges at the cut), so each field is
        re-cut with a little more slack until it fits or is down to the marker alone.
        """
        row = dict(row)
        truncated: list[str] = []
        tokens_cut = 0
        for name in self.truncatable:
            excess = len(prompt_ids) - budget
            if excess <= 0:
                break
            original = row[name]
            n = len(self._text_ids(original))
            if n <= self._marker_len:
                continue  # too short to gain anything by cutting
            slack = 0
            while True:
                keep = max(0, n - excess - self._marker_len - slack)
                row[name] = self._cut(original, keep)
                _, prompt, spans = self._render(row, protect)
                if protect and spans is None:
                    raise self._refuse_unprotectable(row, "the chat template changes the user message")
                new_ids = self._prompt_ids(prompt, spans)
                overshoot = len(new_ids) - budget
                if overshoot <= 0 or keep == 0:
                    break
                slack += overshoot
            truncated.append(name)
            tokens_cut += n - keep
            prompt_ids = new_ids
        if len(prompt_ids) > budget:
            return None, tuple(truncated), tokens_cut
        return prompt_ids, tuple(truncated), tokens_cut

    def encode(self, row: dict[str, Any]) -> dict[str, list[int]] | None:
        """``{"input_ids", "labels"}`` for ``row``, or ``None`` when it cannot fit (counted in :attr:`report`)."""
        encoded = self.encode_row(row)
        self.report.add(row.get(ID), encoded.dropped, encoded.truncated, encoded.tokens_cut)
        if encoded.dropped:
            return None
        return {"input_ids": encoded.input_ids, "labels": encoded.labels}


# --------------------------------------------------------------------------------------------------
# Pre-tokenization (the training path): one cached datasets.map
# --------------------------------------------------------------------------------------------------

_DROPPED, _TRUNCATED, _TOKENS_CUT, _ROW_ID = "_dropped_reason", "_truncated", "_tokens_cut", "_row_id"


def _encode_batch(batch: dict[str, list], encoder: CGDEncoder) -> dict[str, list]:
    names = list(batch)
    out: dict[str, list] = {k: [] for k in ("input_ids", "labels", "length", _DROPPED, _TRUNCATED, _TOKENS_CUT)}
    out[_ROW_ID] = []
    for values in zip(*(batch[k] for k in names), strict=True):
        row = dict(zip(names, values, strict=True))
        enc = encoder.encode_row(row)
        out["input_ids"].append(enc.input_ids or [])
        out["labels"].append(enc.labels or [])
        out["length"].append(len(enc.input_ids or []))
        out[_DROPPED].append(enc.dropped or "")
        out[_TRUNCATED].append(list(enc.truncated))
        out[_TOKENS_CUT].append(enc.tokens_cut)
        rid = row.get(ID)
        out[_ROW_ID].append(None if rid is None else str(rid))
    return out


def _kept(reasons: list[str]) -> list[bool]:
    return [not r for r in reasons]


def _report_from_columns(dataset: datasets.Dataset) -> RowReport:
    """Counts from the mapped columns, so they are right whatever ``num_proc`` was."""
    table = dataset.data
    report = RowReport(ENCODING_STEP, rows_in=table.num_rows)
    dropped = table.column(_DROPPED)
    for item in pc.value_counts(dropped).to_pylist():
        if item["values"]:
            rows = pc.indices_nonzero(pc.equal(dropped, item["values"])).to_pylist()[:MAX_EXAMPLES]
            ids = table.column(_ROW_ID).take(rows).to_pylist()
            report.drop(item["values"], item["counts"], [rid if rid is not None else i for rid, i in zip(ids, rows)])
    flat = pc.list_flatten(table.column(_TRUNCATED))
    if len(flat):
        report.truncated = {item["values"]: item["counts"] for item in pc.value_counts(flat).to_pylist()}
    report.tokens_cut = int(pc.sum(table.column(_TOKENS_CUT)).as_py() or 0)
    return report


def encode_dataset(
    dataset: datasets.Dataset,
    encoder: CGDEncoder,
    num_proc: int | None = None,
    desc: str = "CGD: encoding triplets",
    batch_size: int = 1000,
) -> tuple[datasets.Dataset, RowReport]:
    """Tokenize ``dataset`` once into ``input_ids``, ``labels`` and ``length`` (cached by ``datasets``).

    The raw columns are removed and rows that cannot fit ``max_length`` are filtered out; the report
    counts them by reason (and the truncations) from the mapped columns, so the counts are exact with
    any ``num_proc``. Run it on the main process first in distributed training so the others hit the cache.
    """
    check_columns(dataset.column_names, encoder.method)
    fingerprint = Hasher.hash([dataset._fingerprint, encoder.fingerprint()])
    mapped = dataset.map(
        _encode_batch,
        fn_kwargs={"encoder": encoder},
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        new_fingerprint=fingerprint,
        desc=desc,
    )
    report = _report_from_columns(mapped)
    if report.rows_dropped:
        mapped = mapped.filter(_kept, input_columns=[_DROPPED], batched=True, num_proc=num_proc, desc=f"{desc} (drop)")
    mapped = mapped.remove_columns([_DROPPED, _TRUNCATED, _TOKENS_CUT, _ROW_ID])
    report.log(logger)
    if report.rows_out == 0 and report.rows_in:
        raise ValueError(f"No row fits max_length={encoder.max_length}.\n{report.summary()}")
    return mapped, report


# --------------------------------------------------------------------------------------------------
# Collation
# --------------------------------------------------------------------------------------------------


@dataclass
class CGDCollator(DataCollatorForLanguageModeling):
    """TRL's ``DataCollatorForLanguageModeling`` on rows from :func:`encode_dataset`, with what CGD adds.

    TRL's collator pads ``input_ids`` and the pre-masked ``labels`` (right padding, ``attention_mask``, -100 on pads),
    or with ``padding_free`` flattens them into one ``[1, total]`` row with ``position_ids``, ``cu_seq_lens_q/k``,
    ``max_length_q/k`` and ``seq_idx`` (labels -100 at each sequence start). CGD adds:

    - ``use_cache=False`` in padding-free batches: sdpa and eager attention build the per-sequence mask from
      ``position_ids`` only without a KV cache, and a model called with its default ``use_cache=True`` would let the
      packed sequences attend to each other;
    - a refusal of rows without ``labels``: TRL would learn their ``input_ids`` (the whole prompt) instead.

    The truncation rules and the encoding report live in :class:`CGDEncoder` and :func:`encode_dataset`.
    """

    def __post_init__(self) -> None:
        if not isinstance(self.pad_token_id, int):
            raise TypeError(f"pad_token_id must be a token id (int), got {type(self.pad_token_id).__name__}.")

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        for i, example in enumerate(examples):
            if "input_ids" not in example or "labels" not in example:
                raise ValueError(
                    f"CGDCollator takes rows encoded by cgd.collator.encode_dataset (`input_ids` and `labels`); row {i} "
                    f"of the batch has keys {sorted(example)}. Encode the dataset first: "
                    "encode_dataset(dataset, CGDEncoder(tokenizer, method, max_length))."
                )
        batch = super().torch_call(examples)
        if self.padding_free:
            batch["use_cache"] = False
        return batch
