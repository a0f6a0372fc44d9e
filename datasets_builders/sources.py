"""Question sources: load a Hub or local dataset, map its columns, drop malformed rows, dedupe, sample.

Every question gets a stable id (a hash of the source and its source id, or of the question text when
the source has no id column); resume, sharding and merging are all keyed on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgd import schema

#: Presets: where a well-known question set lives and which columns hold what.
PRESETS: dict[str, dict[str, Any]] = {
    "webinstructsub": {
        "source": "TIGER-Lab/WebInstructSub",
        "question_column": "question",
        "answer_column": "answer",
        "id_column": "index",
    },
    "gsm8k": {
        "source": "openai/gsm8k",
        "source_config": "main",
        "question_column": "question",
        "answer_column": "answer",  # worked solution ending in "#### <answer>"
    },
    "math": {
        "source": "DigitalLearningGmbH/MATH-lighteval",  # Hendrycks MATH (the original repo was taken down)
        "question_column": "problem",
        "answer_column": "solution",  # worked solution with \boxed{}
    },
    "numinamath": {
        "source": "AI-MO/NuminaMath-CoT",
        "question_column": "problem",
        "answer_column": "solution",
    },
    "metamathqa": {
        "source": "meta-math/MetaMathQA",
        "question_column": "query",
        "answer_column": "response",  # ends in "The answer is: <answer>"
        "reference_answer_format": "final_answer",
    },
}


class SourceError(ValueError):
    """The source cannot be read as asked (missing path, Hub unreachable, unreadable file, conflicting ids)."""


_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
_BUILDER_NAMES = {"json", "parquet", "csv", "arrow", "text"}


@dataclass
class Question:
    """One selected question, before any generation."""

    id: str
    question: str
    reference_answer: str | None
    source: str
    source_id: str


@dataclass
class SourceReport:
    """What happened to the source rows (all counted; malformed ones listed by id)."""

    source: str
    rows_loaded: int = 0
    malformed: list[dict[str, Any]] = field(default_factory=list)  # {"source_id", "reason"}
    rows_scanned: int = 0  # rows looked at (in sampled order) before num_samples were collected
    duplicates: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    contaminated: int = 0
    contaminated_ids: list[str] = field(default_factory=list)
    rows_selected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_loaded": self.rows_loaded,
            "malformed": len(self.malformed),
            "malformed_rows": self.malformed,
            "rows_scanned": self.rows_scanned,
            "duplicates": self.duplicates,
            "duplicate_ids": self.duplicate_ids[:1000],
            "contaminated": self.contaminated,
            "contaminated_ids": self.contaminated_ids[:1000],
            "rows_selected": self.rows_selected,
        }


def apply_preset(args: Any) -> dict[str, Any]:
    """The effective source settings: explicit arguments win over the preset's."""
    preset = {}
    if args.source_preset:
        key = args.source_preset.lower()
        if key not in PRESETS:
            raise ValueError(f"Unknown source_preset {args.source_preset!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[key]
    if args.source and preset and args.source != preset["source"]:
        # Another copy of the data (e.g. a local file): keep the preset's columns, not its Hub config/ids.
        preset = {k: v for k, v in preset.items() if k not in ("source_config", "id_column")}
    keys = ("source", "source_config", "question_column", "reference_answer_format")
    resolved = {k: getattr(args, k) if getattr(args, k) is not None else preset.get(k) for k in keys}
    resolved["question_column"] = resolved["question_column"] or "question"
    resolved["reference_answer_format"] = resolved["reference_answer_format"] or "auto"
    # `auto` (the default): the preset's column, else the conventional `answer` / `id` when the source has one;
    # null: no such column (no reference answers / ids hashed from the question).
    for key in ("answer_column", "id_column"):
        value = getattr(args, key)
        resolved[key] = preset.get(key) if value == "auto" else value
        resolved[f"auto_{key}"] = value == "auto" and key not in preset
    resolved["id_column_from_preset"] = args.id_column == "auto" and "id_column" in preset
    return resolved


def is_local_path(source: str) -> bool:
    """Whether ``source`` names a local file or folder (existing or not) rather than a Hub dataset id."""
    if os.path.exists(os.path.expanduser(source)):
        return True
    return (
        Path(source).suffix.lower() in _FILE_BUILDERS
        or source.startswith(("/", ".", "~"))
        or source.count("/") >= 2
        or os.sep != "/"
        and os.sep in source
    )


def public_source_name(source: str, data_files: list[str] | None = None) -> str:
    """The source as published in rows, card and report: a Hub id as is, local files by their file names only."""
    if source in _BUILDER_NAMES and data_files:
        return ",".join(Path(str(f)).name for f in data_files)
    if is_local_path(source):
        return Path(os.path.expanduser(source)).resolve().name
    return source


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_json_lines(path: Path) -> None:
    """Raise :class:`SourceError` naming the file and line of the first line that is not a UTF-8 JSON object.

    ``datasets``' json builder reports these as a traceback without the line; a torn last line (a copy cut
    short) is named as such.
    """
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if head.startswith(b"["):  # one JSON array, not JSON lines
        try:
            json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as err:
            raise SourceError(f"{path}: not valid UTF-8 (byte {err.start}); re-encode the file as UTF-8") from None
        except ValueError as err:
            raise SourceError(f"{path}: not valid JSON ({err})") from None
        return
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise SourceError(
                    f"{path}, line {lineno}: not valid UTF-8 (byte {err.start} of the line); re-encode the file as UTF-8"
                ) from None
            except ValueError as err:
                if not raw.endswith(b"\n") and f.read(1) == b"":
                    raise SourceError(
                        f"{path}, line {lineno} (the last line) is cut off ({err.msg}): the file is truncated; "
                        "complete or remove that line"
                    ) from None
                raise SourceError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise SourceError(f"{path}, line {lineno}: a JSON {type(record).__name__}, not an object")


def normalize_question(text: str) -> str:
    """Dedupe key: NFKC, lower case, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def stable_id(source: str, source_id: str | None, question: str) -> str:
    """A 16-hex-digit id from the source name and its row id (or the normalized question)."""
    key = f"id:{source_id}" if source_id is not None else f"q:{normalize_question(question)}"
    return hashlib.sha256(f"{source}\x00{key}".encode()).hexdigest()[:16]


def load_rows(source: str, source_config: str | None, split: str, data_files: list[str] | None):
    """The source as a ``datasets.Dataset`` (Hub id, local folder, a data file, or a builder + data_files).

    Every way this can fail is a :class:`SourceError` of one line that names the source, raised before any
    generation: a local path or data file that does not exist, a Hub id while the Hub is offline, a JSON
    lines file with a bad or cut-off line, or whatever ``datasets`` raises while reading.
    """
    import datasets

    local_files: list[Path] = []
    if data_files:
        for f in data_files:
            if "*" not in str(f) and not str(f).startswith("hf://") and is_local_path(str(f)):
                if not Path(f).expanduser().is_file():
                    raise SourceError(f"Data file {f} does not exist")
                local_files.append(Path(f).expanduser())
    if is_local_path(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise SourceError(f"Source {source} does not exist (no such file or folder)")
        if path.is_file():
            local_files.append(path)
    for f in local_files:
        if f.suffix.lower() in (".jsonl", ".json"):
            check_json_lines(f)
    try:
        path = Path(source).expanduser()
        if path.is_file() and data_files is None:
            builder = _FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise SourceError(
                    f"Cannot tell the format of {source}; give `source: json|parquet|csv` and `data_files`"
                )
            return datasets.load_dataset(builder, data_files=str(path), split=split)
        return datasets.load_dataset(
            str(path) if is_local_path(source) else source, source_config, data_files=data_files, split=split
        )
    except SourceError:
        raise
    except Exception as err:  # noqa: BLE001 - datasets raises many types; each becomes one line naming the source
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not is_local_path(source) and source not in _BUILDER_NAMES and _hub_offline():
            raise SourceError(
                f"Source {source!r} is a Hub dataset and the Hub is offline (HF_HUB_OFFLINE=1) with no cached copy. "
                "Pass a local file instead: --source path/to/questions.jsonl (e.g. the embedded question set: "
                "python -m cgd.demo.questions --output_dir data/questions, then --source data/questions/train.jsonl)"
            ) from None
        raise SourceError(f"Cannot read source {source!r}: {type(err).__name__}: {text}") from None


def select_questions(
    args: Any,
    is_contaminated: Callable[[str], bool] | None = None,
    dataset: Any = None,
) -> tuple[list[Question], SourceReport]:
    """Load, clean, dedupe, decontaminate and sample the questions (deterministic for a given seed).

    Malformed rows (missing/non-text/empty question) are reported with their source ids. Sampling is a
    seeded shuffle scanned until ``num_samples`` clean, new, uncontaminated questions are collected, so
    decontamination never shrinks the requested count when the source has enough rows.
    """
    cfg = apply_preset(args)
    if dataset is None:
        dataset = load_rows(cfg["source"], cfg["source_config"], args.source_split, args.data_files)
    # Published and hashed into ids: a Hub id, or the file name without its directory (no machine paths,
    # and moving the data does not change the ids).
    source_name = public_source_name(str(cfg["source"]), args.data_files)
    report = SourceReport(source=source_name)
    columns = list(dataset.column_names)
    qcol, acol, idcol = cfg["question_column"], cfg["answer_column"], cfg["id_column"]
    if acol is None and cfg["auto_answer_column"] and "answer" in columns:
        acol = "answer"
    if idcol is None and cfg["auto_id_column"] and "id" in columns:
        idcol = "id"
    if qcol not in columns:
        raise ValueError(f"Question column {qcol!r} is not in the source columns {columns}; set `question_column`")
    if acol is not None and acol not in columns:
        raise ValueError(f"Answer column {acol!r} is not in the source columns {columns}; set `answer_column`")
    if idcol is not None and idcol not in columns:
        if not cfg["id_column_from_preset"]:
            raise ValueError(f"Id column {idcol!r} is not in the source columns {columns}; set `id_column`")
        idcol = None  # the preset's guess does not hold for this copy: fall back to question hashes
    questions = list(dataset[qcol])
    answers = list(dataset[acol]) if acol else [None] * len(questions)
    source_ids = [str(v) if v is not None else None for v in dataset[idcol]] if idcol else None
    if source_ids is not None and cfg["id_column_from_preset"] and len(set(source_ids)) != len(source_ids):
        idcol, source_ids = None, None  # the preset's id column is not unique in this copy: hash questions
    if source_ids is not None:
        _check_ids(source_ids, questions, idcol, source_name)
    report.rows_loaded = len(questions)

    clean: list[int] = []
    for i, q in enumerate(questions):
        sid = source_ids[i] if source_ids and source_ids[i] is not None else str(i)
        if q is None:
            report.malformed.append({"source_id": sid, "reason": "missing question"})
        elif not isinstance(q, str):
            report.malformed.append({"source_id": sid, "reason": f"question is {type(q).__name__}, not text"})
        elif not q.strip():
            report.malformed.append({"source_id": sid, "reason": "empty question"})
        elif answers[i] is not None and (
            isinstance(answers[i], bool) or not isinstance(answers[i], (str, int, float))
        ):
            report.malformed.append(
                {"source_id": sid, "reason": f"reference answer is {type(answers[i]).__name__}, not text or a number"}
            )
        else:
            clean.append(i)

    order = list(clean)
    random.Random(args.seed).shuffle(order)
    limit = args.num_samples if args.num_samples is not None else len(order)
    seen: set[str] = set()
    used_ids: set[str] = set()
    selected: list[Question] = []
    for i in order:
        if len(selected) >= limit:
            break
        report.rows_scanned += 1
        q = questions[i].strip()
        sid = source_ids[i] if source_ids and source_ids[i] is not None else str(i)
        rid = stable_id(source_name, sid if idcol else None, q)
        key = normalize_question(q)
        if args.dedupe and key in seen:
            report.duplicates += 1
            report.duplicate_ids.append(sid)
            continue
        if is_contaminated is not None and is_contaminated(q):
            report.contaminated += 1
            report.contaminated_ids.append(sid)
            continue
        seen.add(key)
        if not idcol and rid in used_ids:  # the same question kept twice (dedupe off): tell them apart by row
            rid = stable_id(source_name, f"row{i}", q)
        used_ids.add(rid)
        answer = answers[i]
        selected.append(
            Question(
                id=rid,
                question=q,
                reference_answer=None if answer is None else str(answer),
                source=source_name,
                source_id=sid,
            )
        )
    if len(used_ids) != len(selected):
        raise SourceError(
            f"{source_name}: the id column {idcol!r} repeats ids of the same question with `dedupe: false`; "
            "set `id_column: null` to tell the copies apart by row"
        )
    report.rows_selected = len(selected)
    return selected, report


def _check_ids(source_ids: list[str | None], questions: list[Any], idcol: str, source_name: str) -> None:
    """Refuse an id column where one id names different questions (resume and merge are keyed on ids)."""
    first: dict[str, tuple[int, str]] = {}
    for i, (sid, q) in enumerate(zip(source_ids, questions)):
        if sid is None or not isinstance(q, str):
            continue
        key = normalize_question(q)
        seen = first.setdefault(sid, (i, key))
        if seen[1] != key:
            raise SourceError(
                f"{source_name}: id {sid!r} (column {idcol!r}) is used by rows {seen[0]} and {i} with different "
                "questions; make the column unique, or set `id_column: null` to derive ids from the question text"
            )


def question_row(q: Question) -> dict[str, Any]:
    """The schema columns a question fills before generation."""
    return {
        schema.ID: q.id,
        schema.QUESTION: q.question,
        schema.REFERENCE_ANSWER: q.reference_answer,
        schema.SOURCE: q.source,
        schema.SOURCE_ID: q.source_id,
    }
