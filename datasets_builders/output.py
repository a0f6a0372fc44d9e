"""Write the Hub-format folder (``data/train-0000i-of-0000N.parquet`` + README.md) atomically, and push it.

The files are written into a hidden staging folder inside ``output_dir`` and moved into place by renames
(:func:`publish`), so a kill at any moment leaves either the previous complete dataset or the new complete
one for ``datasets.load_dataset`` to read, never a part of one.
"""

from __future__ import annotations

import os
import shutil
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


class OutputError(RuntimeError):
    """The output folder cannot be written, or the Hub target cannot be used."""


STAGING_PREFIX = ".staging-"
OLD_DATA_PREFIX = ".old-data-"


def check_output_dir(output_dir: Path) -> None:
    """Fail before any request when ``output_dir`` cannot hold the dataset (not creatable, ``data`` a file...)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            f"Cannot create output_dir {output_dir}: {err.strerror}; choose another output_dir"
        ) from None
    for name in ("data", "checkpoints"):
        if (output_dir / name).exists() and not (output_dir / name).is_dir():
            raise OutputError(f"{output_dir / name} is a file, but the builder writes a folder there; move it away")
    if (output_dir / "README.md").is_dir():
        raise OutputError(f"{output_dir / 'README.md'} is a folder, but the dataset card goes there; move it away")
    probe = output_dir / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"Cannot write into output_dir {output_dir}: {err.strerror}") from None


def start_staging(output_dir: Path) -> Path:
    """A fresh staging folder (leftovers of killed runs are removed first)."""
    for leftover in [*output_dir.glob(STAGING_PREFIX + "*"), *output_dir.glob(OLD_DATA_PREFIX + "*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    staging = output_dir / f"{STAGING_PREFIX}{os.getpid()}"
    (staging / "data").mkdir(parents=True)
    return staging


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, output_dir: Path) -> None:
    """Move the staged ``data/`` and ``README.md`` into ``output_dir`` by renames.

    Order: old ``data/`` out, new ``data/`` in, then the card replaced atomically. In between, the old card
    finds no data (load fails) or the new complete data (loads all of it); no state holds part of a dataset.
    """
    for f in (staging / "data").iterdir():
        _fsync(f)
    _fsync(staging / "README.md")
    _fsync(staging / "data")
    data, old = output_dir / "data", output_dir / f"{OLD_DATA_PREFIX}{os.getpid()}"
    if data.exists():
        os.rename(data, old)
    os.rename(staging / "data", data)
    os.replace(staging / "README.md", output_dir / "README.md")
    _fsync(output_dir)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary name and a rename (a kill leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_parquet_files(rows: list[dict], folder: Path, rows_per_file: int) -> tuple[list[Path], int]:
    """Write the rows (schema columns only, in order) as parquet shards into ``folder/data`` (a staging folder).

    Returns the paths and the in-memory (Arrow) size of the rows in bytes.
    """
    import datasets

    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    num_files = max(1, -(-len(rows) // rows_per_file))
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


def check_hub_target(repo_id: str, revision: str | None = None) -> None:
    """Before any generation: the Hub is reachable, a token is set and can write there; else one clear line."""
    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise OutputError(
            f"--push_to_hub {repo_id}: the Hub is offline (HF_HUB_OFFLINE=1). Build without --push_to_hub and "
            "upload the folder later (huggingface-cli upload --repo-type dataset ...), or unset HF_HUB_OFFLINE"
        )
    if not get_token():
        raise OutputError(
            f"--push_to_hub {repo_id}: no Hugging Face token; run `hf auth login` or set HF_TOKEN before the build"
        )
    try:
        user = HfApi().whoami()
    except Exception as err:  # noqa: BLE001 - network and auth errors alike: one line, before any work
        raise OutputError(f"--push_to_hub {repo_id}: cannot use the Hub ({type(err).__name__}: {err})") from None
    owner = repo_id.split("/")[0]
    names = {user.get("name")} | {org.get("name") for org in user.get("orgs", [])}
    if owner not in names:
        raise OutputError(
            f"--push_to_hub {repo_id}: the token is {user.get('name')!r}'s, which cannot create repos under "
            f"{owner!r} (its namespaces: {sorted(n for n in names if n)})"
        )


def push_folder(
    output_dir: Path,
    repo_id: str,
    private: bool = False,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Create the dataset repo (and branch) if needed and upload the card, data and report; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    api.upload_folder(
        folder_path=str(output_dir),
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        allow_patterns=["README.md", "data/*.parquet", "build_report.json"],
        delete_patterns=["data/*.parquet"],
        commit_message=commit_message or "Upload CGD dataset",
    )
    return str(url) + (f"/tree/{revision}" if revision else "")
