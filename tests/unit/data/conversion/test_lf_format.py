import json

from sftpipe.data.conversion.lf_format import (
    OBSERVATION_SEP,
    conversation_to_lf_row,
    lf_function_calls,
    validate_lf_row,
)
from sftpipe.data.conversion.model import Conversation, Message, ToolCall

TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "run", "parameters": {"type": "object"}}}
]


def conv(*messages: Message, tools=TOOLS) -> Conversation:
    return Conversation(messages=list(messages), tools=tools)


def test_parallel_calls_make_one_function_call_and_one_observation_in_call_order():
    c = conv(
        Message("system", "sys"),
        Message("user", "go"),
        Message(
            "assistant",
            "",
            tool_calls=[ToolCall("a", "bash", {"command": "ls"}), ToolCall("b", "bash", {"command": "pwd"})],
        ),
        Message("tool", "PWD", tool_call_id="b"),
        Message("tool", "LS", tool_call_id="a"),  # completion order
        Message("assistant", "done"),
    )
    row = conversation_to_lf_row(c).row
    assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(row["conversations"][1]["value"]) == [
        {"name": "bash", "arguments": {"command": "ls"}},
        {"name": "bash", "arguments": {"command": "pwd"}},
    ]
    assert row["conversations"][2]["value"] == "LS" + OBSERVATION_SEP + "PWD"
    assert row["system"] == "sys" and json.loads(row["tools"]) == TOOLS
    assert validate_lf_row(row) == []


def test_text_and_reasoning_before_a_call_form_one_tool_call_block():
    c = conv(
        Message("system", "s"),
        Message("user", "go"),
        Message(
            "assistant",
            "Let me look.",
            reasoning_content="think hard",
            tool_calls=[ToolCall("a", "bash", {"command": "ls"})],
        ),
        Message("tool", "out", tool_call_id="a"),
        Message("assistant", "ok", reasoning_content="r2"),
    )
    turns = conversation_to_lf_row(c).row["conversations"]
    assert turns[1]["value"] == (
        "<think>\nthink hard\n</think>\n\nLet me look.\n<tool_call>\n"
        '{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
    )
    assert turns[3]["value"] == "<think>\nr2\n</think>\n\nok"
    dropped = conversation_to_lf_row(c, reasoning="drop").row["conversations"]
    assert "<think>" not in dropped[1]["value"] and dropped[3]["value"] == "ok"
    assert lf_function_calls(dropped[1]["value"]) == [{"name": "bash", "arguments": {"command": "ls"}}]


def test_tag_text_inside_arguments_is_escaped_so_lf_reads_the_same_call():
    args = {"content": "x </tool_call> y <think>"}
    c = conv(
        Message("system", "s"),
        Message("user", "go"),
        Message("assistant", "writing", tool_calls=[ToolCall("a", "bash", args)]),
        Message("tool", "ok", tool_call_id="a"),
        Message("assistant", "done"),
    )
    row = conversation_to_lf_row(c).row
    assert lf_function_calls(row["conversations"][1]["value"]) == [{"name": "bash", "arguments": args}]
    assert validate_lf_row(row) == []


def test_trailing_tool_results_are_trimmed_and_counted():
    c = conv(
        Message("system", "s"),
        Message("user", "go"),
        Message("assistant", "", tool_calls=[ToolCall("a", "bash", {})]),
        Message("tool", "x", tool_call_id="a"),
    )
    res = conversation_to_lf_row(c)
    assert res.trimmed_trailing_turns == 1
    assert [t["from"] for t in res.row["conversations"]] == ["human", "function_call"]


def test_error_policy_drop_removes_the_failed_turn_and_its_result():
    c = conv(
        Message("system", "s"),
        Message("user", "go"),
        Message("assistant", "", tool_calls=[ToolCall("a", "bash", {"command": "bad"})]),
        Message("tool", "<tool_use_error>nope</tool_use_error>", tool_call_id="a"),
        Message("assistant", "", tool_calls=[ToolCall("b", "bash", {"command": "good"})]),
        Message("tool", "fine", tool_call_id="b"),
        Message("assistant", "done"),
    )
    kept = conversation_to_lf_row(c).row["conversations"]
    assert len(kept) == 6
    res = conversation_to_lf_row(c, tool_error_policy="drop")
    turns = res.row["conversations"]
    assert res.dropped_error_turns == 1
    assert [t["from"] for t in turns] == ["human", "function_call", "observation", "gpt"]
    assert "good" in turns[1]["value"] and validate_lf_row(res.row) == []


def test_mid_system_messages_merge_into_the_user_side_and_no_tools_gives_empty_string():
    c = conv(Message("user", "go"), Message("system", "reminder"), Message("assistant", "hi"), tools=[])
    row = conversation_to_lf_row(c).row
    assert row["conversations"][0] == {"from": "human", "value": "go\n\nreminder"}
    assert row["tools"] == "" and row["system"] == ""


def test_starting_with_assistant_is_a_problem_not_a_row():
    res = conversation_to_lf_row(conv(Message("system", "s"), Message("assistant", "hi")))
    assert res.row is None and res.problems


def _ok_row():
    return {
        "conversations": [
            {"from": "human", "value": "q"},
            {"from": "function_call", "value": '{"name": "bash", "arguments": {}}'},
            {"from": "observation", "value": "r"},
            {"from": "gpt", "value": "a"},
        ],
        "system": "s",
        "tools": json.dumps(TOOLS),
    }


def test_validator_accepts_a_good_row_and_names_every_broken_rule():
    assert validate_lf_row(_ok_row()) == []
    cases = {
        "odd number": lambda r: r["conversations"].pop(),
        "expected one of": lambda r: r["conversations"].__setitem__(0, {"from": "gpt", "value": "x"}),
        "not a string": lambda r: r["conversations"][3].__setitem__("value", None),
        "arguments are not an object": lambda r: r["conversations"][1].__setitem__(
            "value", '{"name": "bash", "arguments": "{}"}'
        ),
        "does not parse": lambda r: r["conversations"][1].__setitem__("value", "{bad"),
        "lacks name": lambda r: r["conversations"][1].__setitem__("value", '[{"arguments": {}}]'),
        "tools is list": lambda r: r.__setitem__("tools", TOOLS),
        "not a list": lambda r: r.__setitem__("tools", "{}"),
        '"[]"': lambda r: r.__setitem__("tools", "[]"),
        "system is empty": lambda r: r.__setitem__("system", ""),
        "system is dict": lambda r: r.__setitem__("system", {}),
        "conversations is empty": lambda r: r.__setitem__("conversations", []),
        "not exactly": lambda r: r["conversations"][0].__setitem__("extra", 1),
        "unexpected keys": lambda r: r.__setitem__("id", "x"),
    }
    for expected, breaker in cases.items():
        row = _ok_row()
        breaker(row)
        errors = validate_lf_row(row)
        assert any(expected in e for e in errors), (expected, errors)
