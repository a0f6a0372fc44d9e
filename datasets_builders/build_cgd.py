"""Build a CGD dataset: probe -> critique -> refine (-> direct), resumable, sharded, filtered, pushed.

    python datasets_builders/build_cgd.py --config recipes/builders/smollm2_demo.yaml [--key value ...]
    python datasets_builders/build_cgd.py --config R.yaml --num_shards 4 --shard_index 2   # one node's share
    python datasets_builders/build_cgd.py merge --config R.yaml --num_shards 4             # join the shards

Layout of ``output_dir``: ``data/`` + ``README.md`` (the Hub dataset), ``build_report.{json,md}``, and
``checkpoints/shard-<i>-of-<n>/<stage>.jsonl`` (resume state; never uploaded). Rerunning the same
command after a crash or a kill continues where it stopped without re-sending finished requests.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: this folder's modules (config, output, ...) must not shadow others
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from cgd import schema  # noqa: E402
from datasets_builders.backends import Backend, BackendError, make_backend  # noqa: E402
from datasets_builders.backends import backend_key as _backend_key  # noqa: E402
from datasets_builders.checkpoint import (  # noqa: E402
    CheckpointError,
    ShardLock,
    StageCheckpoint,
    append_run,
    check_fingerprints,
    read_runs,
)
from datasets_builders.config import BuildConfig, ConfigError, StageSpec, parse_args, resolve_stages  # noqa: E402
from datasets_builders.filters import Decontaminator, apply_filters  # noqa: E402
from datasets_builders.output import OutputError, check_hub_target, check_output_dir  # noqa: E402
from datasets_builders.quality import check_references, teacher_quality  # noqa: E402
from datasets_builders.sources import (  # noqa: E402
    Question,
    SourceError,
    apply_preset,
    is_local_path,
    question_row,
    select_questions,
)
from datasets_builders.stages import (  # noqa: E402
    QID,
    StageRun,
    assemble,
    expand,
    failed_records,
    public_model_name,
    run_stage,
    shard_of,
    stage_units,
)
from datasets_builders.tracking import log_build  # noqa: E402

logger = logging.getLogger("cgd.builders")


class MergeError(RuntimeError):
    """Shards are incomplete or inconsistent; nothing is written."""


def shard_dir(output_dir: str | Path, num_shards: int, shard_index: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"shard-{shard_index:05d}-of-{num_shards:05d}"


def chained_fingerprints(specs: list[StageSpec]) -> dict[str, str]:
    """Stage fingerprints that also cover the stages feeding them (a new probe invalidates the critique)."""
    import hashlib

    out, upstream = {}, ""
    for spec in specs:
        feeds = "" if spec.name == "direct" else upstream  # the direct answer sees the question only
        fp = hashlib.sha256((feeds + spec.fingerprint()).encode()).hexdigest()[:16]
        out[spec.name] = fp
        if spec.name != "direct":
            upstream = fp
    return out


class Builder:
    """One build (or merge) described by a :class:`BuildConfig`."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.specs = resolve_stages(config)
        self.output_dir = Path(config.output.output_dir)
        self._backend: Backend | None = None
        self._backend_key: tuple | None = None
        self.this_run: dict[str, StageRun] = {}

    # -- questions ---------------------------------------------------------------------------------
    def questions(self) -> tuple[list[Question], Any]:
        src = self.config.source
        decontaminate = None
        if src.decontaminate_files:
            missing = [f for f in src.decontaminate_files if not Path(f).is_file()]
            if missing:
                raise SourceError(f"Decontamination file(s) not found: {missing}")
            decontaminate = Decontaminator(src.decontaminate_files, src.decontaminate_fields, src.decontaminate_ngram)
        return select_questions(src, decontaminate)

    def question_units(self, questions: list[Question], shard_index: int) -> list[dict]:
        n = self.config.output.num_shards
        units = []
        for q in questions:
            if shard_of(q.id, n) == shard_index:
                unit = question_row(q)
                unit[QID] = q.id
                units.append(unit)
        return units

    # -- generation --------------------------------------------------------------------------------
    def get_backend(self, spec: StageSpec) -> Backend:
        key = _backend_key(spec)
        if key != self._backend_key:
            if self._backend is not None:
                self._backend.close()
            self._backend = None
            self._backend = make_backend(spec, self.config.model)
            self._backend_key = key
        return self._backend

    def generate(self, questions: list[Question]) -> dict[str, StageRun]:
        """Run every stage for this run's shard, checkpointing as it goes."""
        out = self.config.output
        directory = shard_dir(self.output_dir, out.num_shards, out.shard_index)
        lock = ShardLock(directory)
        try:
            check_fingerprints(directory, chained_fingerprints(self.specs))
            question_units = self.question_units(questions, out.shard_index)
            units = question_units
            for spec in self.specs:
                checkpoint = StageCheckpoint(directory / f"{spec.name}.jsonl", out.fsync_interval_s)
                if checkpoint.torn_bytes:
                    logger.warning(
                        "%s: discarded a torn last record (%d bytes)", checkpoint.path, checkpoint.torn_bytes
                    )
                stage_in = stage_units(spec.name, question_units, units)
                try:
                    run = run_stage(spec, stage_in, checkpoint, self.get_backend, progress=out.progress)
                except BackendError as err:
                    raise BackendError(f"{spec.name} stage failed: {err}") from err
                self.this_run[spec.name] = run
                self._log_run(directory, run)
                expanded, missing = expand(spec.name, stage_in, checkpoint)
                if missing:  # a backend returned without delivering every request
                    raise BackendError(
                        f"{spec.name} stage finished with {len(missing)} rows missing (e.g. {missing[:3]})"
                    )
                if spec.name != "direct":
                    units = expanded
        finally:
            if self._backend is not None:
                self._backend.close()
                self._backend, self._backend_key = None, None
            lock.release()
        return self.this_run

    @staticmethod
    def _log_run(directory: Path, run: StageRun) -> None:
        append_run(directory / "runs.jsonl", {"time": time.time(), **run.to_dict()})

    # -- merge / finalize --------------------------------------------------------------------------
    def finalize(self, questions: list[Question], source_report: Any, started: float) -> dict[str, Any]:
        """Join every shard's checkpoints into rows, verify completeness, filter, write the dataset."""
        from datasets_builders.card import render_card
        from datasets_builders.output import (
            content_fingerprint,
            dataset_info,
            publish,
            push_folder,
            start_staging,
            write_parquet_files,
        )
        from datasets_builders.report import print_report, stage_summary, to_markdown, write_report

        out = self.config.output
        rows, problems, runs, totals = [], [], {s.name: [] for s in self.specs}, {}
        failed: list[dict[str, Any]] = []
        for index in range(out.num_shards):
            directory = shard_dir(self.output_dir, out.num_shards, index)
            if not directory.is_dir():
                problems.append(f"shard {index}: no checkpoints at {directory} (never run)")
                continue
            lock = ShardLock(directory)  # refuses to merge a shard that is still running
            try:
                checkpoints = {s.name: StageCheckpoint(directory / f"{s.name}.jsonl") for s in self.specs}
            finally:
                lock.release()
            units = self.question_units(questions, index)
            wanted = {u[schema.ID] for u in units}
            shard_rows, missing = assemble(units, self.specs, checkpoints)
            for spec in self.specs:
                cp = checkpoints[spec.name]
                extra = [rid for rid in cp.records if rid not in wanted and spec.name in ("probe", "direct")]
                if extra:
                    problems.append(f"shard {index}: {spec.name} checkpoint has {len(extra)} ids outside this shard")
                if missing[spec.name]:
                    problems.append(
                        f"shard {index}: {spec.name} misses {len(missing[spec.name])} rows (e.g. {missing[spec.name][:3]})"
                    )
                if cp.duplicates:
                    problems.append(f"shard {index}: {spec.name} checkpoint has {cp.duplicates} duplicate ids")
                t = totals.setdefault(
                    spec.name,
                    {
                        "rows": 0,
                        "failed": 0,
                        "requests_completed": 0,
                        "run_ids": set(),
                        "completion_tokens": 0,
                        "prompt_tokens": 0,
                        "finish_reasons": {},
                    },
                )
                stage_failed = failed_records(cp)
                failed += [{"stage": spec.name, **f} for f in stage_failed]
                t["failed"] += len(stage_failed)
                t["rows"] += len(cp) - len(stage_failed)
                t["requests_completed"] += len(cp)
                t["run_ids"].update(r["run"] for r in cp.records.values() if "run" in r)
                for record in cp.records.values():
                    outs = record["outputs"]
                    t["completion_tokens"] += sum(o["num_tokens"] for o in outs)
                    t["prompt_tokens"] += outs[0]["prompt_tokens"] if outs else 0
                    for o in outs:
                        t["finish_reasons"][o["finish_reason"]] = t["finish_reasons"].get(o["finish_reason"], 0) + 1
            for run in read_runs(directory / "runs.jsonl"):  # a torn last line (a kill) is skipped
                if run.get("name") in runs:
                    runs[run["name"]].append(run)
                    if run.get("run_id") and run.get("requests"):  # a run that sent requests for this stage
                        totals[run["name"]]["run_ids"].add(run["run_id"])
            rows.extend(shard_rows)
        if problems:
            raise MergeError("Cannot build the dataset:\n  " + "\n  ".join(problems))
        ids = [r[schema.ID] for r in rows]
        if len(set(ids)) != len(ids):
            raise MergeError("Duplicate row ids across shards")
        # Every question has rows, or a request of it was rejected (counted in failed_requests).
        accounted = {r[QID] for r in rows} | {f["id"].split(".")[0] for f in failed}
        lost = [q.id for q in questions if q.id not in accounted]
        if lost:
            raise MergeError(f"{len(lost)} questions are missing from the shards (e.g. {lost[:3]})")

        by_name = {s.name: s for s in self.specs}
        for r in rows:  # a Hub id, or a local checkpoint's folder name: never a machine path
            r[schema.STUDENT_MODEL] = public_model_name(by_name["probe"].model)
            r[schema.TEACHER_MODEL] = public_model_name(by_name["refine"].model)
        verdicts_before = _count_verdicts(rows)
        src_cfg = apply_preset(self.config.source)
        kept, filter_counts = apply_filters(
            rows,
            self.config.filters,
            [s.name for s in self.specs],
            reference_answer_format=src_cfg["reference_answer_format"],
            seed=self.config.source.seed,
        )
        quality = teacher_quality(rows, kept, src_cfg["reference_answer_format"])
        for r in kept:
            r.pop(QID, None)

        stage_dicts = {s.name: {**asdict(s), "model": public_model_name(s.model)} for s in self.specs}
        for d in stage_dicts.values():
            d.pop("base_url", None)  # may carry credentials; not part of the published record
        report: dict[str, Any] = {
            "source": source_report.to_dict(),
            "stages": {n: stage_summary(stage_dicts[n], runs[n], totals[n]) for n in by_name},
            "this_run": {n: r.to_dict() for n, r in self.this_run.items()},
            "filters": [c.to_dict() for c in filter_counts],
            "verdicts": {"before": verdicts_before, "after": _count_verdicts(kept)},
            "teacher_quality": quality,
            "failed_requests": failed[:1000],
            "output": {"rows": len(kept), "path": self.output_dir.name, "files": []},
            "num_shards": out.num_shards,
        }
        costs = [s["cost_usd"] for s in report["stages"].values() if s["cost_usd"] is not None]
        report["total_cost_usd"] = round(sum(costs), 4) if costs else None
        staging = start_staging(self.output_dir)  # written aside, then moved into place by renames
        files, num_bytes = write_parquet_files(kept, staging, out.rows_per_file)
        report["output"]["files"] = [str(p.relative_to(staging)) for p in files]
        report["wall_time_s"] = round(time.perf_counter() - started, 3)
        markdown = to_markdown(report)
        title = out.dataset_name or self.output_dir.name
        info = dataset_info(len(kept), num_bytes, files)
        report["output"]["fingerprint"] = fingerprint = content_fingerprint(files)
        card = render_card(
            title, report, list(stage_dicts.values()), self.config.to_dict(), markdown, out.license, info, fingerprint
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        publish(staging, self.output_dir)
        write_report(report, self.output_dir)
        if out.progress:
            print_report(report)
        log_build(report, out.report_to, out.project, out.run_name or self.output_dir.name)
        if out.push_to_hub:
            report["output"]["hub_url"] = push_folder(
                self.output_dir, out.push_to_hub, private=out.private, revision=out.push_to_hub_revision
            )
            write_report(report, self.output_dir)
        return report

    # -- entry -------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Everything that can be checked before the source loads and any request is sent."""
        out = self.config.output
        check_output_dir(self.output_dir)
        if out.push_to_hub:
            check_hub_target(out.push_to_hub, out.push_to_hub_revision)
        if not out.merge:
            for spec in self.specs:
                if spec.backend not in ("transformers", "vllm"):
                    continue
                if is_local_path(spec.model):
                    if not Path(spec.model).expanduser().is_dir():
                        raise ConfigError(
                            f"{spec.name} stage: model {spec.model} does not exist (no such folder); give a local "
                            "checkpoint folder or a Hub model id"
                        )
                elif _hub_offline() and not _cached(spec.model):
                    raise ConfigError(
                        f"{spec.name} stage: model {spec.model!r} is a Hub id, the Hub is offline (HF_HUB_OFFLINE=1) "
                        "and it is not in the local cache; give a local checkpoint folder instead"
                    )

    def run(self) -> dict[str, Any]:
        """Generate this run's shard (unless merging), then finalize when the whole dataset is here."""
        started = time.perf_counter()
        self.preflight()
        questions, source_report = self.questions()
        check_references(self.specs, questions, self.config.model.teacher_sees_reference)
        out = self.config.output
        if not out.merge:
            self.generate(questions)
            if out.num_shards > 1:
                summary = {n: r.to_dict() for n, r in self.this_run.items()}
                directory = shard_dir(self.output_dir, out.num_shards, out.shard_index)
                (directory / "shard_report.json").write_text(json.dumps({"this_run": summary}, indent=2))
                print(
                    f"Shard {out.shard_index}/{out.num_shards} finished. When all shards are done, run the same "
                    f"command with `merge` (or --merge true) to build {self.output_dir}.",
                    file=sys.stderr,
                )
                return {"this_run": summary, "shard_done": True}
        return self.finalize(questions, source_report, started)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cached(model: str) -> bool:
    """Whether a Hub model's config is in the local Hugging Face cache (so it loads offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed id is simply not cached
        return False


def _count_verdicts(rows: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(schema.VERDICTS, 0)
    for r in rows:
        counts[r[schema.VERDICT]] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = parse_args(argv)
    except ValueError as err:  # unknown keys, bad values: say so without a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        Builder(config).run()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (BackendError, CheckpointError, MergeError, SourceError, OutputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
