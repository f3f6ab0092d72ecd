"""Run one OpenHands SDK episode headless against a local OpenAI-compatible URL.

Runs inside the capture venv (openhands-sdk + openhands-tools), not the project env.
Uses the SDK's standard tool set (terminal, file_editor, task_tracker; finish and
think are built in), the way Harbor's openhands-sdk agent configures it.
"""

from __future__ import annotations

import argparse
import os


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--instruction-file", required=True)
    parser.add_argument("--model", default="openai/scripted-model")
    parser.add_argument("--max-iterations", type=int, default=30)
    args = parser.parse_args()

    # Imported late so --help works without the heavy SDK import.
    from openhands.sdk import LLM, Agent, Conversation, Tool
    from openhands.tools.file_editor import FileEditorTool
    from openhands.tools.task_tracker import TaskTrackerTool
    from openhands.tools.terminal import TerminalTool
    from pydantic import SecretStr

    with open(args.instruction_file, encoding="utf-8") as fh:
        instruction = fh.read()
    llm = LLM(
        usage_id="agent",
        model=args.model,
        base_url=args.base_url,
        api_key=SecretStr("sk-dummy"),
        # Short waits: the scripted server fails once on purpose.
        num_retries=3,
        retry_min_wait=1,
        retry_max_wait=2,
    )
    agent = Agent(
        llm=llm,
        tools=[
            Tool(name=TerminalTool.name),
            Tool(name=FileEditorTool.name),
            Tool(name=TaskTrackerTool.name),
        ],
    )
    conversation = Conversation(
        agent=agent,
        workspace=args.workdir,
        max_iteration_per_run=args.max_iterations,
        persistence_dir=os.path.join(os.environ.get("HOME", "/tmp"), "oh-conversations"),
    )
    try:
        conversation.send_message(instruction)
        conversation.run()
        print("OPENHANDS_STATUS", conversation.state.execution_status)
    finally:
        # Closes the terminal tool's tmux session, which would otherwise outlive us.
        conversation.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
