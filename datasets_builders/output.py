"""Write the Hub-format folder (``data/train-0000i-of-0000N.parquet`` + README.md) and push it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cgd import schema

INT_COLUMNS = {schema.num_tokens_column(s) for s in schema.STAGES}


def features() -> Any:
    """Explicit column types, so an all-null column (e.g. no reference answers) is still a string column."""
    import datasets

    return datasets.Features(
        {c: datasets.Value("int64") if c in INT_COLUMNS else datasets.Value("string") for c in schema.ALL_COLUMNS}
    )


def write_parquet_files(rows: list[dict], output_dir: Path, rows_per_file: int) -> tuple[list[Path], int]:
    """Write the rows (schema columns only, in order) as parquet shards; stale shards are removed first.

    Returns the paths and the in-memory (Arrow) size of the rows in bytes.
    """
    import datasets

    data_dir = output_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("train-*.parquet"):
        old.unlink()
    num_files = max(1, -(-len(rows) // max(1, rows_per_file)))
    paths, num_bytes = [], 0
    for i in range(num_files):
        chunk = rows[i * rows_per_file : (i + 1) * rows_per_file]
        table = {c: [r.get(c) for r in chunk] for c in schema.ALL_COLUMNS}
        path = data_dir / f"train-{i:05d}-of-{num_files:05d}.parquet"
        dataset = datasets.Dataset.from_dict(table, features=features())
        dataset.to_parquet(str(path))
        num_bytes += dataset.data.nbytes
        paths.append(path)
    return paths, num_bytes


def content_fingerprint(files: list[Path]) -> str:
    """sha256 (16 hex digits) over the data files' bytes, in order.

    It goes into the card's config descriptions. That matters for local loads: ``datasets`` caches a
    folder whose card has ``configs`` under a key made from the folder name and the card's metadata, not
    from the data files, so a rebuilt folder whose card did not change would be served from a stale
    cache. With the fingerprint in the card, the key changes exactly when the data does.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def dataset_info(num_rows: int, num_bytes: int, files: list[Path]) -> dict:
    """The card's ``dataset_info`` block (features, split size, file sizes)."""
    download_size = sum(p.stat().st_size for p in files)
    return {
        "features": [{"name": c, "dtype": "int64" if c in INT_COLUMNS else "string"} for c in schema.ALL_COLUMNS],
        "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": num_rows}],
        "download_size": download_size,
        "dataset_size": num_bytes,
    }


def push_folder(output_dir: Path, repo_id: str, private: bool = False, commit_message: str | None = None) -> str:
    """Create the dataset repo (if needed) and upload the card and data files; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(output_dir),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=["README.md", "data/*.parquet", "build_report.json"],
        delete_patterns=["data/*.parquet"],
        commit_message=commit_message or "Upload CGD dataset",
    )
    return str(url)
