"""The dataset card (README.md): YAML metadata with one config per training view, and the build's record."""

from __future__ import annotations

from typing import Any

import yaml

from cgd import schema

DATA_GLOB = "data/train-*"


def view_columns(method: str) -> list[str]:
    """Columns of a training view: the id, the method's inputs and its target."""
    spec = schema.get_method(method)
    return [schema.ID, *spec.inputs, spec.target]


def card_metadata(
    license_tag: str | None, info: dict[str, Any] | None = None, fingerprint: str | None = None
) -> dict[str, Any]:
    """YAML header: ``default`` (every column) plus one config per method of :data:`cgd.schema.METHODS`.

    Each config's description carries the data's content ``fingerprint`` (see
    :func:`datasets_builders.output.content_fingerprint`: it keeps ``datasets``' cache of a rebuilt local
    folder from going stale).
    """
    tag = f" [data {fingerprint}]" if fingerprint else ""
    configs: list[dict[str, Any]] = [
        {
            "config_name": "default",
            "default": True,
            "description": f"All columns{tag}",
            "data_files": [{"split": "train", "path": DATA_GLOB}],
        }
    ]
    for method, spec in schema.METHODS.items():
        configs.append(
            {
                "config_name": method,
                "description": f"{method}: {spec.description}{tag}",
                "data_files": [{"split": "train", "path": DATA_GLOB}],
                "columns": view_columns(method),
            }
        )
    meta: dict[str, Any] = {
        "configs": configs,
        "tags": ["cgd", "critique-guided-distillation", "synthetic", "reasoning"],
        "task_categories": ["text-generation"],
        "language": ["en"],
    }
    if license_tag:
        meta["license"] = license_tag
    if info:
        meta["dataset_info"] = info
    return meta


def render_card(
    title: str,
    report: dict[str, Any],
    stages: list[dict[str, Any]],
    config: dict[str, Any],
    report_markdown: str,
    license_tag: str | None = None,
    info: dict[str, Any] | None = None,
    fingerprint: str | None = None,
) -> str:
    """The whole README.md text."""
    header = yaml.safe_dump(
        card_metadata(license_tag, info, fingerprint), sort_keys=False, allow_unicode=True, width=1000
    )
    lines = [
        "---",
        header.rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        "A Critique-Guided Distillation (CGD, arXiv 2505.11628) dataset: for each question the student's "
        "first answer, the teacher's critique of it (closing with `Conclusion: right|wrong`, parsed into "
        "`verdict`) and the teacher's refined answer. Built with `datasets_builders/build_cgd.py` of the cgd "
        "recipes.",
        "",
        "## Training views",
        "",
        'Every view reads the same files; load one with `load_dataset(repo, "<view>")`, or the default '
        "config for all columns.",
        "",
        "| config | student sees | target |",
        "|---|---|---|",
    ]
    for method, spec in schema.METHODS.items():
        lines.append(f"| `{method}` | {', '.join(f'`{c}`' for c in spec.inputs)} | `{spec.target}` |")
    lines += [
        "",
        "## Generation",
        "",
        "| stage | model | backend | temperature | top_p | max_tokens | n | seed |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in stages:
        lines.append(
            f"| {s['name']} | `{s['model']}` | {s['backend']} | {s['temperature']} | {s['top_p']} | {s['max_tokens']} | {s['n']} | {s['seed']} |"
        )
    lines += ["", "### Prompts", ""]
    for s in stages:
        lines += [
            f"**{s['name']}**" + (" (system prompt below)" if s.get("system_prompt") else ""),
            "",
            "```text",
            s["template"],
            "```",
            "",
        ]
        if s.get("system_prompt"):
            lines += ["```text", s["system_prompt"], "```", ""]
    src = config
    lines += [
        "## Source and filters",
        "",
        f"Source: `{report['source']['source']}` (split `{src.get('source_split')}`), "
        f"`num_samples` {src.get('num_samples')}, seed {src.get('seed')}, dedupe {src.get('dedupe')}, "
        f"decontamination: {src.get('decontaminate_ngram')}-gram overlap against "
        f"{len(src.get('decontaminate_files') or [])} eval file(s).",
        "",
        report_markdown,
        "",
        "## Columns",
        "",
        "| column | meaning |",
        "|---|---|",
    ]
    meanings = {
        schema.ID: "stable row id (hash of source and source id / question)",
        schema.QUESTION: "the question x",
        schema.REFERENCE_ANSWER: "the source's reference answer, when it has one (SFT target)",
        schema.INITIAL_RESPONSE: "y': the student's first answer",
        schema.CRITIQUE: "c: the teacher's critique of y'",
        schema.VERDICT: "right / wrong / unparsed, from the critique's last `Conclusion:` line",
        schema.REFINED_RESPONSE: "ŷ: the teacher's refined answer (CGD target)",
        schema.TEACHER_ANSWER: "the teacher's direct answer to x (distilled-SFT target), when the direct stage ran",
        schema.SOURCE: "source dataset",
        schema.SOURCE_ID: "row id in the source dataset",
        schema.STUDENT_MODEL: "model of the probe stage",
        schema.TEACHER_MODEL: "model of the refine stage",
    }
    for col in schema.ALL_COLUMNS:
        lines.append(
            f"| `{col}` | {meanings.get(col, 'finish reason / generated tokens of that stage (null if it did not run)')} |"
        )
    return "\n".join(lines) + "\n"
