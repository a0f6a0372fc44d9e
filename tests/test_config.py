"""CGDConfig: CGD fields, template overrides, and the defaults a CGD run relies on."""

from __future__ import annotations

import pytest

from cgd.collator import DEFAULT_TRUNCATION_MARKER
from cgd.config import TEMPLATE_FIELDS, CGDConfig
from cgd.schema import METHODS
from cgd.templates import PromptTemplates, build_user_message


def make_config(tmp_path, **kwargs) -> CGDConfig:
    return CGDConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **kwargs)


def test_defaults_make_a_cgd_run_correct(tmp_path):
    config = make_config(tmp_path)
    assert config.method == "cgd"
    assert config.remove_unused_columns is False  # keeps `length` for the length-grouped sampler
    assert config.dataset_kwargs == {"skip_prepare_dataset": True}
    assert config.drop_invalid_rows is False
    assert config.truncation_marker == DEFAULT_TRUNCATION_MARKER
    assert config.prompt_templates() == PromptTemplates()


def test_skip_prepare_dataset_is_forced_but_other_dataset_kwargs_kept(tmp_path):
    config = make_config(tmp_path, dataset_kwargs={"skip_prepare_dataset": False, "other": 1})
    assert config.dataset_kwargs == {"skip_prepare_dataset": True, "other": 1}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_is_accepted(tmp_path, method):
    assert make_config(tmp_path, method=method).method == method


def test_unknown_method_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="cgd_no_critique"):
        make_config(tmp_path, method="cgd_with_critique")


def test_packing_is_refused_with_a_pointer_to_padding_free(tmp_path):
    with pytest.raises(ValueError, match="padding_free"):
        make_config(tmp_path, packing=True)


def test_template_overrides_reach_prompt_templates(tmp_path, triplet_rows):
    config = make_config(
        tmp_path,
        cgd_template="Q: {question}\nDraft: {initial_response}\nReview: {critique}",
        sft_template="Solve: {question}",
        system_prompt="Be brief.",
    )
    templates = config.prompt_templates()
    row = triplet_rows[0]
    assert build_user_message("cgd", row, templates) == (
        f"Q: {row['question']}\nDraft: {row['initial_response']}\nReview: {row['critique']}"
    )
    assert build_user_message("sft", row, templates) == f"Solve: {row['question']}"
    assert templates.system_prompt == "Be brief."
    assert templates.cft == PromptTemplates().cft  # untouched ones keep their defaults


def test_every_template_field_maps_to_a_prompt_templates_field():
    known = set(PromptTemplates.__dataclass_fields__)
    assert set(TEMPLATE_FIELDS.values()) <= known
    assert set(TEMPLATE_FIELDS) <= set(CGDConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    ("field", "template", "bad"),
    [
        ("cft_template", "{question} {critique}", "critique"),  # CFT never shows the critique
        ("sft_template", "{question} {reference_answer}", "reference_answer"),  # the target leaking into the input
        ("plain_prompt_template", "Q: {question}", "question"),
    ],
)
def test_template_placeholders_are_checked_at_parse_time(tmp_path, field, template, bad):
    with pytest.raises(ValueError, match=rf"`{field}` uses placeholder\(s\) \['{bad}'\]"):
        make_config(tmp_path, **{field: template})


def test_literal_braces_are_allowed(tmp_path):
    config = make_config(tmp_path, sft_template="{question}\nAnswer in \\boxed{{}}.")
    assert config.prompt_templates().sft.endswith("\\boxed{{}}.")
