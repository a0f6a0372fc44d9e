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


# -- options that do not apply are refused when the config is built (before any model loads) ---------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("completion_only_loss", True),
        ("completion_only_loss", False),
        ("dataset_text_field", "prompt"),
        ("assistant_only_loss", True),
        ("truncation_mode", "keep_end"),
        ("shuffle_dataset", True),
        ("packing_strategy", "wrapped"),
        ("eval_packing", True),
    ],
)
def test_sft_options_that_do_nothing_here_are_refused_with_the_reason(tmp_path, key, value):
    from cgd.config import NOT_APPLICABLE

    with pytest.raises(ValueError, match=rf"`{key}: {value}` does not apply to CGD training: .+") as err:
        make_config(tmp_path, **{key: value})
    assert NOT_APPLICABLE[key][1] in str(err.value)


def test_chat_template_path_must_be_an_existing_template_file(tmp_path):
    with pytest.raises(ValueError, match=r"must be a \.jinja/\.j2 template file.*clone_chat_template"):
        make_config(tmp_path, chat_template_path="Qwen/Qwen3-0.6B")
    with pytest.raises(ValueError, match="no such file"):
        make_config(tmp_path, chat_template_path=str(tmp_path / "missing.jinja"))
    template = tmp_path / "chat.jinja"
    template.write_text("{{ messages }}")
    assert make_config(tmp_path, chat_template_path=str(template)).chat_template_path == str(template)


def test_hub_model_revision_sets_the_push_revision(tmp_path):
    assert make_config(tmp_path, hub_model_revision="v1-cgd").hub_revision == "v1-cgd"
    assert make_config(tmp_path).hub_revision is None
    with pytest.raises(ValueError, match="disagree"):
        make_config(tmp_path, hub_model_revision="a", hub_revision="b")


def test_script_arguments_refuse_streaming_and_two_sources():
    from cgd.config import CGDScriptArguments

    for kwargs in ({"streaming": True}, {"dataset_streaming": True}):
        with pytest.raises(ValueError, match="Streaming is not supported.*counted"):
            CGDScriptArguments(dataset_name="x.jsonl", **kwargs)
    with pytest.raises(ValueError, match="either `dataset_name` or `datasets`"):
        CGDScriptArguments(dataset_name="x.jsonl", datasets=[{"path": "y.jsonl"}])
    with pytest.raises(ValueError, match="test_split_size"):
        CGDScriptArguments(dataset_name="x.jsonl", test_split_size=0)
    mixture = CGDScriptArguments(datasets=[{"path": "a.jsonl"}, {"path": "b.jsonl", "fraction": 0.5}])
    assert [d.path for d in mixture.datasets] == ["a.jsonl", "b.jsonl"]  # TRL's DatasetConfig objects
