"""lib.media.text's prompt words: how every page, caption and the report name a prompt, the empty one included."""

from lib.media.text import EMPTY_PROMPT_RULE, empty_prompt_note, is_empty_prompt, quoted_prompt, reads_as


def test_blank_text_is_the_empty_prompt_and_is_named_not_quoted_as_nothing():
    assert is_empty_prompt("") and is_empty_prompt(" \t") and not is_empty_prompt(" 7 ")
    assert quoted_prompt("7") == "'7'" and quoted_prompt("a rocket ship") == "'a rocket ship'"
    assert quoted_prompt("  ") == "the empty prompt (unconditional)"
    assert reads_as("seven") == "should read as 'seven'"
    assert reads_as("") == "unconditional: no prompt to read as"


def test_one_message_names_the_field_and_states_the_rule():
    assert empty_prompt_note() == f"The prompt is empty, and {EMPTY_PROMPT_RULE}."
    assert empty_prompt_note("Prompt 2") == f"Prompt 2 is empty, and {EMPTY_PROMPT_RULE}."
    assert "unconditional" in EMPTY_PROMPT_RULE and "γ changes nothing" in EMPTY_PROMPT_RULE
