"""Append-only JSONL checkpoints: one line per finished row, written whole and fsynced.

Each record is one ``os.write`` of a complete ``json + "\\n"`` line on an ``O_APPEND`` descriptor. Once
``write`` returns, the record survives a SIGKILL of the process (it is in the kernel's page cache);
``fsync`` makes it survive a machine crash too and runs at most every ``fsync_interval_s`` seconds and
when the stage closes (``0`` syncs every record; a per-record fsync costs milliseconds on common disks,
which would cap a fast server at ~100 rows/s). A record is either wholly there or a torn last line
without its newline. Opening a checkpoint detects that torn tail, truncates it away and
reports it; any other unreadable line is corruption and raises. A ``meta.json`` next to the files
records each stage's fingerprint so a resume with different prompts or sampling is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    """A checkpoint is corrupt, locked by another run, or belongs to different stage settings."""


class StageCheckpoint:
    """Finished rows of one stage of one shard: ``{"id": ..., "outputs": [...]}`` per line."""

    def __init__(self, path: str | Path, fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_interval_s = fsync_interval_s
        self._last_sync = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.torn_bytes = self._load()
        self._fd: int | None = None

    def _load(self) -> int:
        """Read finished records; drop a torn last line. Returns the number of bytes discarded."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn record
        torn = len(data) - end
        for lineno, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rid = record["id"]
            except (ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"{self.path}:{lineno} is not a checkpoint record ({err})") from None
            if rid in self.records:
                self.duplicates += 1  # first one wins; a record is never written twice by one run
                continue
            self.records[rid] = record
        if torn:
            with open(self.path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        return torn

    def __contains__(self, row_id: str) -> bool:
        return row_id in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict[str, Any]) -> None:
        """Write one finished row durably (one write, then fsync)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        view = memoryview(line)
        while view:  # os.write may write less than asked for large records
            written = os.write(self._fd, view)
            view = view[written:]
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            self.sync()
        self.records[record["id"]] = record

    def sync(self) -> None:
        """fsync what was appended so far."""
        if self._fd is not None:
            os.fsync(self._fd)
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None


class ShardLock:
    """An exclusive ``flock`` on a shard directory: two runs of the same shard would duplicate work."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise CheckpointError(f"Another build is running on {directory} (lock {self.path} is held)") from None

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def check_fingerprints(directory: Path, fingerprints: dict[str, str]) -> None:
    """Record stage fingerprints on first use; refuse to resume a stage whose settings changed."""
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    for stage, fp in fingerprints.items():
        old = meta.get(stage)
        if old is not None and old != fp and (directory / f"{stage}.jsonl").exists():
            raise CheckpointError(
                f"The {stage} checkpoint in {directory} was made with different model/prompt/sampling settings "
                f"(fingerprint {old} != {fp}). Use another output_dir, or delete {directory / (stage + '.jsonl')}."
            )
        meta[stage] = fp
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)


def _drop_torn_tail(path: Path) -> int:
    """Truncate a last line without its newline (a write cut by a kill); returns the bytes dropped."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end == len(data):
        return 0
    with open(path, "r+b") as f:
        f.truncate(end)
        os.fsync(f.fileno())
    return len(data) - end


def append_run(path: Path, record: dict[str, Any]) -> None:
    """Append one record to a run log (``runs.jsonl``) as one write, after dropping a torn last line.

    Without the truncation the next record would be glued onto the torn one and both would be lost.
    """
    _drop_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The records of a run log; a torn last line is skipped, any other unreadable line raises CheckpointError."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    records = []
    for lineno, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as err:
            raise CheckpointError(f"{path}:{lineno} is not a run record ({err}); delete that line") from None
    return records
