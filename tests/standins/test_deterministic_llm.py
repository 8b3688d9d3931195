"""The OpenAI stand-in's answer rules: deterministic, RAG-visible, tool calls on request."""

import json

import pytest

from pipecat_speculative.standins.deterministic_llm import (
    choose_tool_call,
    estimate_prompt_tokens,
    estimate_tokens,
    extract_passages,
    reply_to,
    split_stream_pieces,
    tool_arguments,
)

SYSTEM = {"role": "system", "content": "You are helpful. Use the context provided to answer."}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["location", "unit"],
        },
    },
}


def user(text):
    return {"role": "user", "content": text}


def test_the_same_conversation_gets_the_same_answer():
    messages = [SYSTEM, user("What is the refund policy?")]
    assert reply_to(messages) == reply_to(list(messages))


def test_a_plain_answer_has_several_sentences_and_a_short_first_one():
    reply = reply_to([SYSTEM, user("What is the refund policy?")])
    assert reply.source == "plain"
    first, rest = reply.text.split(". ", 1)
    assert estimate_tokens(first + ".") <= 12
    assert rest.count(".") >= 2
    assert "What is the refund policy?" in reply.text


def test_a_system_prompt_that_mentions_context_is_not_retrieval():
    assert extract_passages([SYSTEM, user("hi")]) is None


@pytest.mark.parametrize(
    "block",
    [
        "Relevant passages:\n[1] Refunds take 30 days. Ask support.\n[2] Shipping is free.",
        "Context:\n- Refunds take 30 days. Ask support.\n- Shipping is free.",
        "<context>\n<passage id='a'>Refunds take 30 days. Ask support.</passage>\n"
        "<passage>Shipping is free.</passage>\n</context>",
        "Retrieved documents from the handbook:\n\nRefunds take 30 days. Ask support.\n\n"
        "Shipping is free.",
        "Knowledge base:\n1. (source: faq.md, score 0.91) Refunds take 30 days. Ask support.\n"
        "2. Shipping is free.",
    ],
)
def test_retrieved_passages_are_found_in_common_layouts(block):
    passages = extract_passages([SYSTEM, {"role": "system", "content": block}, user("Refunds?")])
    assert passages == ["Refunds take 30 days. Ask support.", "Shipping is free."]


def test_a_rag_answer_quotes_the_first_passage():
    block = (
        "Relevant passages:\n[1] Refunds take 30 days. Ask support first.\n[2] Shipping is free."
    )
    reply = reply_to([SYSTEM, {"role": "system", "content": block}, user("Refunds?")])
    assert reply.source == "retrieval"
    assert reply.text.startswith("Here is what the knowledge base says.")
    assert "Refunds take 30 days." in reply.text
    assert "Ask support first." in reply.text
    assert "Shipping" not in reply.text


def test_context_inside_the_user_message_is_used_and_the_question_is_found():
    content = "Context:\n[1] The office opens at 9.\n\nQuestion: when does the office open?"
    reply = reply_to([SYSTEM, user(content)])
    assert reply.source == "retrieval"
    assert reply.question == "when does the office open?"
    assert "The office opens at 9." in reply.text


def test_an_empty_retrieval_is_visible_in_the_answer():
    reply = reply_to([SYSTEM, {"role": "system", "content": "Context: none"}, user("Refunds?")])
    assert reply.source == "retrieval-empty"
    assert "could not find" in reply.text


def test_an_empty_conversation_gets_a_please_repeat():
    assert reply_to([SYSTEM]).source == "empty"


def test_a_tool_is_called_when_the_user_mentions_it():
    call = choose_tool_call([user("What's the weather in Paris today?")], [WEATHER])
    assert call is not None and call.name == "get_weather"
    assert json.loads(call.arguments) == {"location": "Paris today", "unit": "celsius"}
    assert call.id.startswith("call_")


def test_no_tool_call_without_a_mention_or_with_tool_choice_none():
    assert choose_tool_call([user("Tell me a joke")], [WEATHER]) is None
    assert choose_tool_call([user("weather in Paris")], [WEATHER], "none") is None


def test_tool_choice_can_force_a_call():
    forced = {"type": "function", "function": {"name": "get_weather"}}
    assert choose_tool_call([user("Tell me a joke")], [WEATHER], forced).name == "get_weather"
    assert choose_tool_call([user("Tell me a joke")], [WEATHER], "required").name == "get_weather"


def test_after_a_tool_result_the_answer_reports_it():
    messages = [
        user("weather in Paris"),
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 21}'},
    ]
    reply = reply_to(messages, [WEATHER])
    assert reply.source == "tool-result"
    assert '{"temp_c": 21}' in reply.text
    assert "get weather" in reply.text


def test_tool_arguments_follow_the_schema_types():
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "opts": {"type": "object"},
        },
    }
    assert tool_arguments(schema, "book 3 seats for Friday") == {
        "n": 3,
        "x": 3.0,
        "flag": True,
        "tags": ["Friday"],
        "opts": {},
    }


def test_token_estimates_are_a_quarter_of_the_characters():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_prompt_tokens([user("abcd")]) == 3 + 4 + 1


def test_stream_pieces_rebuild_the_text():
    text = "Sure, here is  the answer."
    pieces = split_stream_pieces(text)
    assert "".join(pieces) == text
    assert pieces[:2] == ["Sure,", " here"]
