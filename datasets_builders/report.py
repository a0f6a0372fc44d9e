"""The build report: rows in/out per stage and filter, tokens, throughput, cost; JSON + Markdown + rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets_builders.quality import quality_markdown


def stage_summary(stage: dict[str, Any], runs: list[dict[str, Any]], totals: dict[str, Any]) -> dict[str, Any]:
    """One stage's line: checkpoint totals (rows, failed rows, tokens, requests over all runs), time and cost.

    ``requests_completed`` counts every request answered over all runs, killed ones included (each checkpoint
    record is one); a request in flight when a run was killed was sent again and counts once. Wall time and
    the rates are summed over the runs that finished the stage (``finished_runs``): a killed run logs no time.
    """
    wall = sum(r.get("wall_s", 0.0) for r in runs)
    requests = sum(r.get("requests", 0) for r in runs)
    generated = sum(r.get("completion_tokens", 0) for r in runs)
    out = {
        "model": stage["model"],
        "backend": stage["backend"],
        "rows": totals["rows"],
        "failed": totals.get("failed", 0),
        "completion_tokens": totals["completion_tokens"],
        "prompt_tokens": totals["prompt_tokens"],
        "requests_completed": totals.get("requests_completed", totals["rows"]),
        "runs": len(totals.get("run_ids", ())) or sum(1 for r in runs if r.get("requests")),
        "finished_runs": len(runs),
        "wall_s": round(wall, 3),
        "load_s": round(sum(r.get("load_s", 0.0) for r in runs), 3),
        "rows_per_s": round(requests / wall, 3) if wall > 0 else None,
        "tokens_per_s": round(generated / wall, 2) if wall > 0 else None,
        "finish_reasons": totals["finish_reasons"],
        "cost_usd": None,
    }
    if stage.get("input_price") is not None or stage.get("output_price") is not None:
        out["cost_usd"] = round(
            totals["prompt_tokens"] * (stage.get("input_price") or 0.0) / 1e6
            + totals["completion_tokens"] * (stage.get("output_price") or 0.0) / 1e6,
            4,
        )
    return out


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (also used in the dataset card)."""
    src = report["source"]
    lines = [
        "| source step | rows |",
        "|---|---:|",
        f"| loaded | {src['rows_loaded']} |",
        f"| malformed (missing/empty question) | {src['malformed']} |",
        f"| scanned for sampling | {src['rows_scanned']} |",
        f"| duplicates dropped | {src['duplicates']} |",
        f"| contaminated dropped | {src['contaminated']} |",
        f"| selected | {src['rows_selected']} |",
        "",
        "| stage | model | backend | rows | failed requests | generated tokens | prompt tokens | requests completed | runs | wall s | rows/s | tokens/s | cost USD |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["stages"].items():
        cost = "" if s["cost_usd"] is None else f"{s['cost_usd']:.4f}"
        lines.append(
            f"| {name} | {s['model']} | {s['backend']} | {s['rows']} | {s['failed']} | {s['completion_tokens']} | "
            f"{s['prompt_tokens']} | {s['requests_completed']} | {s['runs']} | {s['wall_s']:.2f} | {s['rows_per_s'] or ''} | {s['tokens_per_s'] or ''} | {cost} |"
        )
    lines += ["", "| filter | enabled | rows in | dropped | rows out | detail |", "|---|---|---:|---:|---:|---|"]
    for f in report["filters"]:
        detail = ", ".join(f"{k}: {v}" for k, v in f["detail"].items())
        lines.append(
            f"| {f['name']} | {f['enabled']} | {f['rows_in']} | {f['dropped']} | {f['rows_out']} | {detail} |"
        )
    v = report["verdicts"]
    lines += [
        "",
        f"Verdicts before filtering: right {v['before']['right']}, wrong {v['before']['wrong']}, unparsed {v['before']['unparsed']}; "
        f"after: right {v['after']['right']}, wrong {v['after']['wrong']}, unparsed {v['after']['unparsed']}.",
        f"Requests rejected by the server as invalid (rows left out, ids and reasons in build_report.json): "
        f"{len(report.get('failed_requests') or [])}.",
        f"Rows written: {report['output']['rows']}. Total cost: {report['total_cost_usd'] if report['total_cost_usd'] is not None else 'n/a'} USD.",
        *quality_markdown(report),
    ]
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    """Print the stage and filter tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=max(Console(stderr=True).width, 150))
    table = Table(title="CGD build: stages")
    for col in (
        "stage",
        "model",
        "backend",
        "rows",
        "failed",
        "gen tokens",
        "requests",
        "wall s",
        "rows/s",
        "tok/s",
        "cost $",
    ):
        table.add_column(col)
    for name, s in report["stages"].items():
        table.add_row(
            name, s["model"], s["backend"], str(s["rows"]), str(s["failed"]), str(s["completion_tokens"]),
            str(s["requests_completed"]),
            f"{s['wall_s']:.2f}", str(s["rows_per_s"] or "-"), str(s["tokens_per_s"] or "-"),
            "-" if s["cost_usd"] is None else f"{s['cost_usd']:.4f}",
        )  # fmt: skip
    console.print(table)
    table = Table(title="CGD build: source and filters")
    for col in ("step", "rows in", "dropped", "rows out", "detail"):
        table.add_column(col)
    src = report["source"]
    table.add_row("source (malformed)", str(src["rows_loaded"]), str(src["malformed"]), "", "")
    table.add_row(
        "dedupe / decontam",
        str(src["rows_scanned"]),
        str(src["duplicates"] + src["contaminated"]),
        str(src["rows_selected"]),
        f"dup {src['duplicates']}, contam {src['contaminated']}",
    )
    for f in report["filters"]:
        table.add_row(
            f["name"] + ("" if f["enabled"] else " (off)"),
            str(f["rows_in"]),
            str(f["dropped"]),
            str(f["rows_out"]),
            ", ".join(f"{k}: {v}" for k, v in f["detail"].items()),
        )
    console.print(table)
    console.print(f"rows written: {report['output']['rows']} -> {report['output']['path']}")
    failed = report.get("failed_requests") or []
    if failed:
        console.print(f"requests rejected by the server (rows left out): {len(failed)}, e.g. {failed[0]}")
    quality = (report.get("teacher_quality") or {}).get("generated")
    if quality:
        console.print(
            "teacher quality (generated rows): "
            + ", ".join(
                f"{label} {100 * quality[key]['rate']:.1f}% of {quality[key]['n']}"
                for label, key in (("verdict accuracy", "verdict_accuracy"), ("refined right", "refined_accuracy"))
                if quality[key]["n"]
            )
        )


def write_report(report: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write ``build_report.json`` and ``build_report.md`` to ``output_dir``."""
    from datasets_builders.output import write_text_atomic

    json_path = output_dir / "build_report.json"
    md_path = output_dir / "build_report.md"
    write_text_atomic(json_path, json.dumps(report, indent=2, ensure_ascii=False))
    write_text_atomic(md_path, "# CGD build report\n\n" + to_markdown(report) + "\n")
    return json_path, md_path
