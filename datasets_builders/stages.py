"""Run the generation stages over a shard's rows, checkpointing each finished row, and assemble rows.

A *unit* is a row being built: the question's columns plus the outputs of the stages run so far. A
stage turns units into requests (its template filled from the unit), skips units already in its
checkpoint, and appends each result as it arrives. A stage with ``n > 1`` expands each unit into ``n``
units (ids suffixed ``.<stage letter><k>``). The direct stage answers each question once and its answer
is joined to every unit of that question.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cgd import schema
from cgd.verdict import parse_verdict
from datasets_builders.backends import Backend, Completion, Rejection, Request, Sampling
from datasets_builders.checkpoint import CheckpointError, StageCheckpoint
from datasets_builders.prompts import AVAILABLE_PLACEHOLDERS, fill_template

OUTPUT_COLUMN = {
    "probe": schema.INITIAL_RESPONSE,
    "critique": schema.CRITIQUE,
    "refine": schema.REFINED_RESPONSE,
    "direct": schema.TEACHER_ANSWER,
}
QID = "_question_id"  # internal: the question a unit came from
logger = logging.getLogger("cgd.builders")


@dataclass
class StageRun:
    """What one stage did in this run (requests actually sent, time, tokens) and what its checkpoint holds."""

    name: str
    model: str
    backend: str
    units: int = 0
    resumed: int = 0  # units already finished before this run
    torn_bytes: int = 0  # bytes of a torn last record discarded on open
    requests: int = 0  # requests completed in this run (rows generated + rows the server rejected)
    failed: int = 0  # requests the server rejected as invalid in this run (recorded as failed rows)
    run_id: str = field(default_factory=lambda: f"{time.time_ns()}-{os.getpid()}")  # tags its checkpoint records
    completion_tokens: int = 0  # generated in this run
    prompt_tokens: int = 0  # prompts of this run
    load_s: float = 0.0
    wall_s: float = 0.0  # generation time of this run (model load excluded)
    finish_reasons: dict[str, int] = field(default_factory=dict)  # over the whole checkpoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shard_of(question_id: str, num_shards: int) -> int:
    """Which shard a question belongs to (ids are hex digests, so this is a stable hash partition)."""
    return int(question_id, 16) % num_shards


def stage_units(stage: str, question_units: list[dict], previous_units: list[dict]) -> list[dict]:
    """The units a stage works on: questions for probe/direct, the previous stage's units otherwise."""
    return question_units if stage in ("probe", "direct") else previous_units


def public_model_name(model: str) -> str:
    """A model as published in rows, card and report: a Hub id as is, a local checkpoint by its folder name."""
    from datasets_builders.sources import is_local_path

    if is_local_path(model):
        return os.path.basename(os.path.normpath(os.path.abspath(os.path.expanduser(model))))
    return model


def failed_records(checkpoint: StageCheckpoint) -> list[dict[str, Any]]:
    """Rows whose request the server rejected: ``{"id", "status", "reason"}`` each."""
    return [{"id": rid, **r["failed"]} for rid, r in checkpoint.records.items() if r.get("failed")]


def build_request(spec: Any, unit: dict) -> Request:
    row = {key: unit.get(key) for key in AVAILABLE_PLACEHOLDERS[spec.name]}
    return Request(unit[schema.ID], fill_template(spec.template, unit), spec.system_prompt, row)


def expand(stage: str, units: list[dict], checkpoint: StageCheckpoint) -> tuple[list[dict], list[str]]:
    """Units after ``stage``: each unit joined with its checkpointed outputs; returns (units, missing ids)."""
    out, missing = [], []
    for unit in units:
        record = checkpoint.records.get(unit[schema.ID])
        if record is None:
            missing.append(unit[schema.ID])
            continue
        outputs = record["outputs"]
        for k, o in enumerate(outputs):
            new = dict(unit)
            if len(outputs) > 1:
                new[schema.ID] = f"{unit[schema.ID]}.{stage[0]}{k}"
            new[OUTPUT_COLUMN[stage]] = o["text"]
            new[schema.finish_reason_column(stage)] = o["finish_reason"]
            new[schema.num_tokens_column(stage)] = o["num_tokens"]
            out.append(new)
    return out, missing


def join_direct(units: list[dict], direct_units: list[dict]) -> list[dict]:
    """Attach each question's direct teacher answer to all of that question's units."""
    by_question = {u[QID]: u for u in direct_units}
    cols = (schema.TEACHER_ANSWER, schema.finish_reason_column("direct"), schema.num_tokens_column("direct"))
    for unit in units:
        d = by_question.get(unit[QID])
        for col in cols:
            unit[col] = d[col] if d else None
    return units


def run_stage(
    spec: Any,
    units: list[dict],
    checkpoint: StageCheckpoint,
    get_backend: Callable[[Any], Backend],
    progress: bool = True,
) -> StageRun:
    """Generate every unit missing from ``checkpoint`` and append each result as it arrives."""
    from tqdm.auto import tqdm

    run = StageRun(
        spec.name, public_model_name(spec.model), spec.backend, units=len(units), torn_bytes=checkpoint.torn_bytes
    )
    wanted = {u[schema.ID] for u in units}
    foreign = [rid for rid in checkpoint.records if rid not in wanted]
    if foreign:
        raise CheckpointError(
            f"{checkpoint.path} holds {len(foreign)} ids that are not rows of this shard (e.g. {foreign[:3]}): "
            "the source, sampling or sharding changed since it was written. Use another output_dir."
        )
    todo = [u for u in units if u[schema.ID] not in checkpoint]
    run.resumed = len(units) - len(todo)
    if run.resumed:
        logger.info(
            "%s: %d of %d rows already done (in %s), skipped; %d to generate",
            spec.name, run.resumed, len(units), checkpoint.path.name, len(todo),
        )  # fmt: skip
    if todo:
        start = time.perf_counter()
        backend = get_backend(spec)
        run.load_s = time.perf_counter() - start
        sampling = Sampling(spec.temperature, spec.top_p, spec.max_tokens, spec.n, spec.seed)
        bar = tqdm(total=len(units), initial=run.resumed, desc=spec.name, unit="row", disable=not progress)

        def on_result(request: Request, completions: list[Completion] | Rejection) -> None:
            record: dict[str, Any] = {"id": request.id, "model": spec.model, "run": run.run_id}
            run.requests += 1
            if isinstance(completions, Rejection):  # the row's own problem: recorded as failed, not re-sent
                logger.warning("%s: row %s rejected by the server: %s", spec.name, request.id, completions.reason)
                checkpoint.append({**record, "outputs": [], "failed": asdict(completions)})
                run.failed += 1
                bar.update(1)
                return
            checkpoint.append({**record, "outputs": [asdict(c) for c in completions]})
            run.completion_tokens += sum(c.num_tokens for c in completions)
            run.prompt_tokens += completions[0].prompt_tokens if completions else 0
            bar.update(1)

        start = time.perf_counter()
        try:
            backend.generate([build_request(spec, u) for u in todo], sampling, on_result)
        finally:
            run.wall_s = time.perf_counter() - start
            bar.close()
            checkpoint.close()
    for record in checkpoint.records.values():
        for o in record["outputs"]:
            run.finish_reasons[o["finish_reason"]] = run.finish_reasons.get(o["finish_reason"], 0) + 1
    return run


def assemble(
    question_units: list[dict], specs: list[Any], checkpoints: dict[str, StageCheckpoint]
) -> tuple[list[dict], dict[str, list[str]]]:
    """Rows from the checkpoints alone (no generation): every unit through every stage.

    Returns the rows and, per stage, the ids missing from its checkpoint (empty when the shard is complete).
    """
    units = question_units
    direct_units: list[dict] | None = None
    missing: dict[str, list[str]] = {}
    for spec in specs:
        expanded, missing[spec.name] = expand(
            spec.name, stage_units(spec.name, question_units, units), checkpoints[spec.name]
        )
        if spec.name == "direct":
            direct_units = expanded
        else:
            units = expanded
    rows = []
    for unit in units:
        row = {col: None for col in schema.ALL_COLUMNS}
        row.update({k: v for k, v in unit.items() if k in row})
        row[QID] = unit[QID]
        row[schema.VERDICT] = parse_verdict(row[schema.CRITIQUE])
        rows.append(row)
    if direct_units is not None:
        join_direct(rows, direct_units)
    return rows, missing
