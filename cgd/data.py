"""Loading and validating CGD triplet datasets.

Triplets come from the Hub (a builder's ``push_to_hub`` output), from a local copy of such a
repository (parquet shards + README card) or from plain JSONL/JSON/parquet files. Validation runs
before tokenization so that a bad row fails with its index, id and field instead of surfacing as a
tokenizer error (or, worse, an empty target trained silently) deep inside training. :class:`RowReport` is the one
report shape for what validation and encoding keep, truncate and drop.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cgd.schema import ID, required_columns

logger = logging.getLogger(__name__)

#: File extensions ``load_triplets`` reads directly, mapped to the ``datasets`` builder that reads them.
FILE_BUILDERS: dict[str, str] = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

_DROP_HINT = "Fix the data, or set `drop_invalid_rows: true` in the recipe to drop such rows and report them."

#: How many example row ids a report keeps per reason.
MAX_EXAMPLES = 5


class TripletValidationError(ValueError):
    """A triplet dataset is missing a column or has a row that cannot be trained on."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _builder_for(path: str) -> str | None:
    name = path.lower()
    for ext, builder in FILE_BUILDERS.items():
        if name.endswith(ext):
            return builder
    return None


def _looks_local(source: str) -> bool:
    """A path-like source (not a Hub id): absolute/relative prefix, a glob, or a known file extension."""
    return (
        source.startswith(("/", "./", "../", "~"))
        or any(ch in source for ch in "*?[")
        or _builder_for(source) is not None
    )


def _expand_files(patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        matches = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        missing = [m for m in matches if not os.path.isfile(m)]
        if not matches or missing:
            raise FileNotFoundError(f"Triplet data file(s) not found: {missing or [pattern]!r}")
        files.extend(matches)
    return files


def resolve_source(source: str, data_files: str | list[str] | None = None) -> tuple[str, str | list[str] | None]:
    """``(path, data_files)`` for ``datasets.load_dataset``: a data file or glob becomes its builder and the files.

    Raises ``FileNotFoundError`` naming the path when a path-like source does not exist.
    """
    if not source:
        raise ValueError("Triplet data needs a source: a Hub dataset id, a folder, or data file(s).")
    expanded = os.path.expanduser(source)
    if os.path.isdir(expanded):
        return expanded, data_files
    builder = _builder_for(expanded)
    if builder is not None or any(ch in expanded for ch in "*?["):
        files = _expand_files([expanded])
        builder = builder or _builder_for(files[0])
        if builder is None:
            raise ValueError(f"Cannot tell the format of {files[0]!r}; use one of {sorted(FILE_BUILDERS)}.")
        return builder, files
    if source in set(FILE_BUILDERS.values()):
        if data_files is None:
            raise ValueError(f"source={source!r} is a file format; pass the files to read as `data_files`.")
        return source, _expand_files([data_files] if isinstance(data_files, str) else list(data_files))
    if _looks_local(source):
        raise FileNotFoundError(f"Triplet data not found: {source!r} is not an existing file or folder.")
    return source, data_files


class DataSourceError(ValueError):
    """Triplet data that exists but has no such split or configuration."""


def load_triplets(
    source: str,
    split: str = "train",
    data_files: str | list[str] | None = None,
    revision: str | None = None,
    name: str | None = None,
) -> datasets.Dataset:
    """Load one split of a triplet dataset as a ``datasets.Dataset``.

    ``source`` is a Hub dataset id (``org/name``), a local folder laid out like a Hub dataset repository
    (parquet shards plus a README card), or a ``.jsonl``/``.json``/``.parquet``/``.csv`` file or glob.
    ``data_files`` narrows a folder or Hub repository to some of its files; with a builder name as
    ``source`` (``"json"``, ``"parquet"``) it names the files to read. ``name`` picks a configuration of the card
    (a builder output has ``default`` and one view per method). An unknown split or configuration raises
    :class:`DataSourceError` listing what there is.
    """
    path, files = resolve_source(source, data_files)
    is_file = path in set(FILE_BUILDERS.values())
    if name is not None and is_file:
        raise DataSourceError(
            f"`dataset_config: {name}` names a configuration of a dataset card; {source!r} is a plain data file."
        )
    try:
        return datasets.load_dataset(path, name=name, split=split, data_files=files, revision=revision)
    except ValueError as err:
        message = str(err)
        if "Unknown split" in message:
            raise DataSourceError(
                f"Triplet data {source!r} has no split {split!r} ({message.strip()}). The builder writes only "
                "'train': hold part of it out with `test_split_size: 0.05`, name an existing split, or set "
                "`eval_strategy: no`."
            ) from None
        if "BuilderConfig" in message or "config name" in message.lower():
            raise DataSourceError(
                f"Triplet data {source!r} has no configuration {name!r}: {message.strip()}"
            ) from None
        raise
    except (FileNotFoundError, ConnectionError, OSError) as err:
        if os.path.exists(os.path.expanduser(source)) or is_file:
            raise
        raise FileNotFoundError(
            f"Could not load triplets {source!r}: it is not a local file or folder, and loading it as a Hub "
            f"dataset failed ({type(err).__name__}: {err}). Check the id and revision, or your network "
            "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE make Hub ids unreachable)."
        ) from err


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@dataclass
class RowReport:
    """What one step did to the rows: how many it kept, dropped by reason (with a few example ids), truncated by field.

    The one report shape of CGD: :func:`validate_triplets` and :func:`cgd.collator.encode_dataset` each return one,
    the trainer keeps both per dataset and writes their :meth:`summary` into the model card. ``rows_out`` is derived
    (``rows_in`` minus the drops), so the counts always add up.
    """

    step: str  #: what produced it, e.g. "Triplet validation"
    rows_in: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  #: reason -> rows dropped for it
    examples: dict[str, list[Any]] = field(default_factory=dict)  #: reason -> up to MAX_EXAMPLES row ids
    truncated: dict[str, int] = field(default_factory=dict)  #: field -> kept rows whose field was shortened
    tokens_cut: int = 0  #: tokens removed by truncation, over the kept rows

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.rows_dropped

    def drop(self, reason: str, count: int, example_ids: list[Any]) -> None:
        """Count ``count`` rows dropped for ``reason``; keep the first ``MAX_EXAMPLES`` of ``example_ids``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        kept = self.examples.setdefault(reason, [])
        kept.extend(example_ids[: MAX_EXAMPLES - len(kept)])

    def add(
        self, row_id: Any, dropped: str | None = None, truncated: tuple[str, ...] = (), tokens_cut: int = 0
    ) -> None:
        """Count one row (row by row; whole datasets are counted from their columns)."""
        self.rows_in += 1
        if dropped:
            self.drop(dropped, 1, [row_id])
            return
        for name in truncated:
            self.truncated[name] = self.truncated.get(name, 0) + 1
        self.tokens_cut += tokens_cut

    def summary(self) -> str:
        """One line: kept/in, then the drops by reason with example ids, then the truncations."""
        text = f"{self.step}: {self.rows_out}/{self.rows_in} rows kept, {self.rows_dropped} dropped"
        drops = sorted(self.dropped.items(), key=lambda kv: -kv[1])
        if drops:
            text += " (" + "; ".join(f"{r}: {c}, e.g. {self.examples.get(r, [])}" for r, c in drops) + ")"
        if self.truncated:
            text += "; truncated: " + ", ".join(f"{f} in {c} row(s)" for f, c in self.truncated.items())
        if self.tokens_cut:
            text += f"; {self.tokens_cut} input tokens cut"
        return text + "."

    def log(self, log: logging.Logger) -> None:
        """The summary as a warning when rows were dropped or truncated, else as info."""
        (log.warning if self.dropped or self.truncated else log.info)(self.summary())


def _problem_masks(table: pa.Table, columns: tuple[str, ...]) -> dict[str, pa.ChunkedArray]:
    """``{reason: boolean mask}`` of rows whose ``columns`` are null, empty/whitespace or not strings.

    Vectorised with pyarrow so 100K rows validate in milliseconds. A row is counted under the first
    problem found (columns in order), so ``dropped`` counts add up to the rows dropped.
    """
    masks: dict[str, pa.ChunkedArray] = {}
    already = pa.chunked_array([pa.array(np.zeros(table.num_rows, dtype=bool))])
    for name in columns:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            missing = pc.is_null(col)
            empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0), False)
            checks = ((f"{name}: missing (null)", missing), (f"{name}: empty string", empty))
        elif pa.types.is_null(col.type):
            checks = ((f"{name}: missing (null)", pc.is_null(col)),)
        else:
            missing = pc.is_null(col)
            checks = (
                (f"{name}: missing (null)", missing),
                (f"{name}: not a string ({col.type})", pc.invert(missing)),
            )
        for reason, mask in checks:
            mask = pc.and_(mask, pc.invert(already))
            if pc.any(mask).as_py():
                masks[reason] = mask
                already = pc.or_(already, mask)
    return masks


def _row_label(index: int, row_id: Any) -> str:
    return f"row {index} (id={row_id!r})" if row_id is not None else f"row {index}"


def check_columns(column_names: list[str], method: str) -> tuple[str, ...]:
    """The columns ``method`` needs; raises naming the missing ones, the method and the present columns."""
    required = required_columns(method)
    missing = [c for c in required if c not in column_names]
    if missing:
        raise TripletValidationError(
            f"Dataset is missing column(s) {missing} required by method {method!r} "
            f"(it needs {list(required)}). Present columns: {list(column_names)}."
        )
    return required


def validate_triplets(
    dataset: datasets.Dataset, method: str, drop_invalid: bool = False
) -> tuple[datasets.Dataset, RowReport]:
    """Check that ``dataset`` can train ``method``; raise on the first bad row or drop and count bad rows.

    Required columns (:func:`cgd.schema.required_columns`) must exist. In every row, each input field
    and the target must be a non-empty string. Columns the method does not read are not checked.
    """
    required = check_columns(dataset.column_names, method)
    present = list(dataset.column_names)

    table = dataset.select_columns(list(required)).with_format("arrow")[:]
    masks = _problem_masks(table, required)
    id_column = dataset.select_columns([ID]).with_format("arrow")[:].column(ID) if ID in present and masks else None

    def row_id(index: int) -> Any:
        return id_column[index].as_py() if id_column is not None else index

    report = RowReport("Triplet validation", rows_in=len(dataset))
    first_bad: tuple[int, str] | None = None
    for reason, mask in masks.items():
        bad = pc.indices_nonzero(mask).to_pylist()
        report.drop(reason, len(bad), [row_id(i) for i in bad[:MAX_EXAMPLES]])
        if first_bad is None or bad[0] < first_bad[0]:
            first_bad = (bad[0], reason)

    if first_bad is None:
        report.log(logger)
        return dataset, report
    n_bad = report.rows_dropped
    if not drop_invalid:
        index, reason = first_bad
        column, problem = reason.split(": ", 1)
        raise TripletValidationError(
            f"{_row_label(index, row_id(index) if id_column is not None else None)}: field {column!r} is {problem}; method {method!r} needs non-empty "
            f"text in {list(required)}. {n_bad} of {len(dataset)} rows have a problem "
            f"({', '.join(f'{r}: {c}' for r, c in report.dropped.items())}). {_DROP_HINT}"
        )

    bad_any = None
    for mask in masks.values():
        bad_any = mask if bad_any is None else pc.or_(bad_any, mask)
    keep = pc.indices_nonzero(pc.invert(bad_any)).to_pylist()
    report.log(logger)
    if not keep:
        raise TripletValidationError(f"Every row is invalid for method {method!r}.\n{report.summary()}")
    return dataset.select(keep), report
