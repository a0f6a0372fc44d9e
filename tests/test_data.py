"""Triplet loading (files, globs, Hub-format folders) and validation errors / drop mode."""

from __future__ import annotations

import json
import time

import datasets
import pytest

from cgd import schema
from cgd.data import MAX_EXAMPLES, RowReport, TripletValidationError, load_triplets, validate_triplets

CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: test
    path: data/test-*.parquet
---
# Tiny CGD triplets
"""


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_jsonl_parquet_and_glob(tmp_path, triplet_rows):
    _write_jsonl(tmp_path / "a.jsonl", triplet_rows[:10])
    _write_jsonl(tmp_path / "b.jsonl", triplet_rows[10:])
    ds = load_triplets(str(tmp_path / "a.jsonl"))
    assert len(ds) == 10 and ds[0][schema.ID] == "row-0"
    assert len(load_triplets(str(tmp_path / "*.jsonl"))) == 16

    datasets.Dataset.from_list(triplet_rows).to_parquet(str(tmp_path / "t.parquet"))
    ds = load_triplets(str(tmp_path / "t.parquet"))
    assert ds.column_names == list(triplet_rows[0]) and len(ds) == 16
    assert len(load_triplets("json", data_files=[str(tmp_path / "a.jsonl")])) == 10


def test_load_hub_format_folder(tmp_path, triplet_rows):
    """A local copy of what a builder's push_to_hub writes: parquet shards + a README card with configs."""
    (tmp_path / "data").mkdir()
    datasets.Dataset.from_list(triplet_rows[:12]).to_parquet(str(tmp_path / "data/train-00000-of-00001.parquet"))
    datasets.Dataset.from_list(triplet_rows[12:]).to_parquet(str(tmp_path / "data/test-00000-of-00001.parquet"))
    (tmp_path / "README.md").write_text(CARD)
    assert len(load_triplets(str(tmp_path))) == 12
    test = load_triplets(str(tmp_path), split="test")
    assert test[schema.ID] == [f"row-{i}" for i in range(12, 16)]


@pytest.mark.parametrize("source", ["./nope.jsonl", "/definitely/missing/dir/", "missing/*.parquet"])
def test_missing_paths_name_the_path(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope|missing"):
        load_triplets(source)


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    with pytest.raises(FileNotFoundError, match="some-org/no-such-triplets"):
        load_triplets("some-org/no-such-triplets")


# -- validation -------------------------------------------------------------------------------------


def test_valid_dataset_passes_untouched(triplet_rows):
    ds = datasets.Dataset.from_list(triplet_rows)
    out, report = validate_triplets(ds, "cgd")
    assert out is ds and report.rows_in == report.rows_out == 16 and not report.dropped


def test_missing_column_names_column_method_and_present_columns(triplet_rows):
    ds = datasets.Dataset.from_list(triplet_rows).remove_columns(schema.CRITIQUE)
    with pytest.raises(TripletValidationError) as err:
        validate_triplets(ds, "cgd")
    msg = str(err.value)
    assert "'critique'" in msg and "'cgd'" in msg and "Present columns" in msg and "refined_response" in msg
    # A method that does not read the critique is fine without it.
    validate_triplets(ds, "cgd_no_critique")


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "empty string"), ("  \n ", "empty string"), (None, "missing")],
)
def test_bad_target_names_row_id_and_field(triplet_rows, value, problem):
    triplet_rows[5][schema.REFINED_RESPONSE] = value
    ds = datasets.Dataset.from_list(triplet_rows)
    with pytest.raises(TripletValidationError) as err:
        validate_triplets(ds, "cgd")
    msg = str(err.value)
    assert "row 5 (id='row-5')" in msg and "'refined_response'" in msg and problem in msg
    assert "drop_invalid_rows: true" in msg


def test_non_string_target_column(triplet_rows):
    for i, r in enumerate(triplet_rows):
        r[schema.REFERENCE_ANSWER] = i  # e.g. a numeric answer column
    ds = datasets.Dataset.from_list(triplet_rows)
    with pytest.raises(
        TripletValidationError, match=r"row 0 \(id='row-0'\): field 'reference_answer' is not a string"
    ):
        validate_triplets(ds, "sft")
    validate_triplets(ds, "cgd")  # cgd does not read the reference answer


def test_drop_mode_counts_reasons_and_keeps_good_rows(triplet_rows, caplog):
    triplet_rows[1][schema.REFINED_RESPONSE] = ""
    triplet_rows[2][schema.CRITIQUE] = None
    triplet_rows[3][schema.REFINED_RESPONSE] = " "
    triplet_rows[3][schema.QUESTION] = ""  # one row, two problems: counted once (first column in order)
    ds = datasets.Dataset.from_list(triplet_rows).shuffle(seed=0)  # indices mapping must be honoured
    out, report = validate_triplets(ds, "cgd", drop_invalid=True)
    assert report.rows_in == 16 and report.rows_out == len(out) == 13 and report.rows_dropped == 3
    assert report.dropped == {
        "question: empty string": 1,
        "critique: missing (null)": 1,
        "refined_response: empty string": 1,
    }
    assert report.examples["refined_response: empty string"] == ["row-1"]
    assert {"row-1", "row-2", "row-3"}.isdisjoint(out[schema.ID])
    assert "13/16 rows kept" in report.summary() and "13/16" in caplog.text
    assert report.summary().startswith("Triplet validation: 13/16 rows kept, 3 dropped (")


def test_row_report_counts_add_up_and_read_the_same_for_every_step():
    """One shape for validation and encoding: rows out = rows in - drops, a few example ids, truncations by field."""
    report = RowReport("CGD encoding")
    for i in range(MAX_EXAMPLES + 3):
        report.add(f"r{i}", dropped="target_too_long")
    report.add("ok-1", truncated=("initial_response",), tokens_cut=40)
    report.add("ok-2", truncated=("initial_response", "critique"), tokens_cut=2)
    report.add("ok-3")
    assert (report.rows_in, report.rows_out, report.rows_dropped) == (MAX_EXAMPLES + 6, 3, MAX_EXAMPLES + 3)
    assert report.examples == {"target_too_long": [f"r{i}" for i in range(MAX_EXAMPLES)]}
    assert report.truncated == {"initial_response": 2, "critique": 1} and report.tokens_cut == 42
    assert report.summary() == (
        f"CGD encoding: 3/{MAX_EXAMPLES + 6} rows kept, {MAX_EXAMPLES + 3} dropped (target_too_long: "
        f"{MAX_EXAMPLES + 3}, e.g. {report.examples['target_too_long']}); truncated: initial_response in 2 row(s), "
        "critique in 1 row(s); 42 input tokens cut."
    )
    assert RowReport("Triplet validation", rows_in=4).summary() == "Triplet validation: 4/4 rows kept, 0 dropped."


def test_drop_mode_with_nothing_left_raises(triplet_rows):
    for r in triplet_rows:
        r[schema.TEACHER_ANSWER] = ""
    with pytest.raises(TripletValidationError, match="Every row is invalid"):
        validate_triplets(datasets.Dataset.from_list(triplet_rows), "distilled_sft", drop_invalid=True)


def test_validation_is_fast_on_100k_rows():
    n = 100_000
    text = ["some text"] * n
    ds = datasets.Dataset.from_dict(
        {
            schema.ID: [str(i) for i in range(n)],
            schema.QUESTION: text,
            schema.INITIAL_RESPONSE: text,
            schema.CRITIQUE: text,
            schema.REFINED_RESPONSE: text[:-1] + [""],
        }
    )
    start = time.perf_counter()
    out, report = validate_triplets(ds, "cgd", drop_invalid=True)
    elapsed = time.perf_counter() - start
    assert report.rows_out == n - 1 and report.examples["refined_response: empty string"] == [str(n - 1)]
    assert elapsed < 5.0, elapsed
