"""What Codex runs in its hook process: fleet's fourth surface, beside the CLI, MCP and the dashboard.

Codex starts `python -S fleet/hooks/receiver.py hook|notify AGENT_DIR ...` for every hook event and
every finished turn (`fleet.agents.codex` writes that command line). `receiver` appends the event to
the agent's journal; while an assignment is open, `gates` asks for a missing report at Stop and
denies an out-of-scope patch at PreToolUse; at PermissionRequest, `hold` holds the call until an
answer, and `approve` lets the `[watchdog] approve` policy answer at once, with `programs` checking
that the program an allowed command runs is not one the agent could have planted.

The rule for everything the hook process loads: **the standard library only, and start-up in
milliseconds.** Codex waits for each hook before it goes on, so the receiver imports nothing from
fleet on its hot path and the rest only for the event that needs it; what it loads from fleet's
lower layers must itself be stdlib only (no jsonschema, typer, libtmux, filelock, mcp, ...).
`tests/test_hooks_layout.py` runs the receiver for each event it handles and pins what it loads.

The hooks write files the service reads (the journal, the ask log) and read files the service
writes (the assignment context, the approve policy, approval answers). So the service may import
this package; nothing below it may.
"""
