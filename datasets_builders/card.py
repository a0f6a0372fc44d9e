"""The dataset card (README.md), built with huggingface_hub's ``DatasetCard`` / ``DatasetCardData``.

The metadata carries one ``configs`` entry per training view, the license, tags (with the paper's
``arxiv:2505.11628`` so the Hub links the paper), task category, size category, the source dataset when it
is on the Hub, and ``dataset_info``; the body records the build.
"""

from __future__ import annotations

from typing import Any

from cgd import schema

DATA_GLOB = "data/train-*"
PAPER = "2505.11628"
TAGS = ["cgd", "critique-guided-distillation", "synthetic", "reasoning", f"arxiv:{PAPER}"]


def view_columns(method: str) -> list[str]:
    """Columns of a training view: the id, the method's inputs and its target."""
    spec = schema.get_method(method)
    return [schema.ID, *spec.inputs, spec.target]


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    for limit, name in bounds:
        if num_rows < limit:
            return name
    return "1M<n<10M" if num_rows < 10_000_000 else "10M<n<100M"


def card_data(
    license_tag: str | None,
    info: dict[str, Any] | None = None,
    fingerprint: str | None = None,
    pretty_name: str | None = None,
    source: str | None = None,
    num_rows: int | None = None,
) -> Any:
    """``DatasetCardData``: ``default`` config (every column) plus one per method of :data:`cgd.schema.METHODS`.

    Each config's description carries the data's content ``fingerprint`` (see
    :func:`datasets_builders.output.content_fingerprint`: it keeps ``datasets``' cache of a rebuilt local
    folder from going stale).
    """
    from huggingface_hub import DatasetCardData

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
    from datasets_builders.sources import is_local_path

    hub_source = source if source and source.count("/") == 1 and not is_local_path(source) else None
    return DatasetCardData(
        license=license_tag,
        language=["en"],
        task_categories=["text-generation"],
        size_categories=[size_category(num_rows)] if num_rows is not None else None,
        source_datasets=[hub_source] if hub_source else None,
        pretty_name=pretty_name,
        tags=list(TAGS),
        configs=configs,
        dataset_info=info,
    )


def card_metadata(
    license_tag: str | None, info: dict[str, Any] | None = None, fingerprint: str | None = None
) -> dict[str, Any]:
    """The card's metadata as a dict (what the YAML header holds)."""
    return card_data(license_tag, info, fingerprint).to_dict()


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
    """The whole README.md text (metadata rendered by huggingface_hub)."""
    from huggingface_hub import DatasetCard

    data = card_data(
        license_tag,
        info,
        fingerprint,
        pretty_name=title,
        source=report["source"]["source"],
        num_rows=report["output"]["rows"],
    )
    lines = [
        f"# {title}",
        "",
        f"A [Critique-Guided Distillation](https://huggingface.co/papers/{PAPER}) (CGD) dataset: for each question the student's "
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
    lines += [
        "",
        "## Citation",
        "",
        "```bibtex",
        "@article{kapusuzoglu2025cgd,",
        "  title   = {Critique-Guided Distillation},",
        "  author  = {Kapusuzoglu and others},",
        "  journal = {arXiv preprint arXiv:2505.11628},",
        "  year    = {2025}",
        "}",
        "```",
    ]
    body = "\n".join(lines) + "\n"
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
