"""Log a build's figures to an experiment tracker (``report_to: trackio``), next to the training runs.

One tracker step per build (or merge): per stage rows, failed rows, rows/s, tokens/s and token counts; the
verdict mix before and after the filters; the teacher's verdict and refined-answer accuracy against the
reference answers (when the source has them); and the rows written. trackio is local-first: the run lands in
its local store (``$TRACKIO_DIR``) and ``trackio show`` opens the dashboard; nothing goes over the network
unless a Space is configured for it.
"""

from __future__ import annotations

from typing import Any

TRACKERS = ("none", "trackio")


def build_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's figures as flat ``group/name`` numbers (what a tracker plots)."""
    metrics: dict[str, float] = {}
    for name, stage in report["stages"].items():
        for key in ("rows", "failed", "completion_tokens", "prompt_tokens", "rows_per_s", "tokens_per_s"):
            if stage.get(key) is not None:
                metrics[f"{name}/{key}"] = float(stage[key])
    for when in ("before", "after"):
        for verdict, count in report["verdicts"][when].items():
            metrics[f"verdicts_{when}_filters/{verdict}"] = float(count)
    quality = (report.get("teacher_quality") or {}).get("generated") or {}
    for key in (
        "student_accuracy",
        "verdict_accuracy",
        "verdict_accuracy_parsed",
        "refined_accuracy",
        "direct_accuracy",
    ):
        if quality.get(key) and quality[key].get("n"):
            metrics[f"teacher/{key}"] = float(quality[key]["rate"])
    metrics["output/rows"] = float(report["output"]["rows"])
    metrics["output/failed_requests"] = float(len(report.get("failed_requests") or []))
    if report.get("wall_time_s") is not None:
        metrics["output/wall_time_s"] = float(report["wall_time_s"])
    return metrics


def run_config(report: dict[str, Any]) -> dict[str, Any]:
    """What the run is (public names only: no local paths, no URLs, no keys)."""
    return {
        "source": report["source"]["source"],
        "rows_selected": report["source"]["rows_selected"],
        "num_shards": report.get("num_shards"),
        **{f"{name}_model": s["model"] for name, s in report["stages"].items()},
        **{f"{name}_backend": s["backend"] for name, s in report["stages"].items()},
    }


def log_build(report: dict[str, Any], tracker: str, project: str, run_name: str) -> None:
    """Send the build's figures to ``tracker`` (``none``: nothing)."""
    if tracker in (None, "none"):
        return
    import trackio

    trackio.init(project=project, name=run_name, config=run_config(report))
    try:
        trackio.log(build_metrics(report))
    finally:
        trackio.finish()
