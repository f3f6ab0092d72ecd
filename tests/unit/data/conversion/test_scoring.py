from sftpipe.data.conversion.model import Conversation, Message, ToolCall
from sftpipe.data.conversion.scoring import WEIGHTS, score_conversation


def _turns(n: int, final: bool = True, error: bool = False) -> Conversation:
    msgs = [Message("system", "s"), Message("user", "fix it")]
    for i in range(n):
        if i == 1:
            call = ToolCall(
                f"c{i}", "Edit", {"file_path": "/repo/a.py", "old_string": "a", "new_string": "b"}
            )
        elif i == 2:
            call = ToolCall(f"c{i}", "Write", {"file_path": "/repo/test_repro.py", "content": "x"})
        elif i == n - 1:
            call = ToolCall(f"c{i}", "Bash", {"command": "python -m pytest -q"})
        else:
            call = ToolCall(f"c{i}", "Read", {"file_path": f"/repo/{i}.py"})
        msgs.append(Message("assistant", "", tool_calls=[call]))
        text = "3 passed in 0.1s" if call.name == "Bash" else "ok"
        msgs.append(
            Message(
                "tool",
                "<tool_use_error>boom</tool_use_error>" if error else text,
                tool_call_id=call.id,
                is_error=error,
            )
        )
    if final:
        msgs.append(Message("assistant", "Done."))
    return Conversation(messages=msgs, tools=[])


def test_a_complete_verified_episode_scores_high_and_components_are_in_range():
    s = score_conversation(_turns(10))
    assert set(s.components) == set(WEIGHTS)
    assert all(v is None or 0.0 <= v <= 1.0 for v in s.components.values())
    assert s.components["submission_completeness"] == 1.0
    assert s.components["test_verification"] == 1.0  # wrote test + ran tests + passed
    assert s.composite > 0.9


def test_truncated_failing_episode_scores_lower():
    good, bad = score_conversation(_turns(10)), score_conversation(_turns(10, final=False, error=True))
    assert bad.composite < good.composite
    assert bad.components["submission_completeness"] == 0.15  # only the late-test bonus
    assert bad.details["repeated_errors"] and bad.details["truncated"]


def test_step_efficiency_decays_after_80_and_missing_components_are_left_out():
    assert score_conversation(_turns(200)).components["step_efficiency"] == 0.0
    assert score_conversation(_turns(139)).components["step_efficiency"] == 0.5
    no_edit = Conversation(messages=[Message("user", "hi"), Message("assistant", "hello")], tools=[])
    s = score_conversation(no_edit)
    assert s.components["edit_concentration"] is None and 0.0 <= s.composite <= 1.0
