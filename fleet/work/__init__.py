"""Work: assignments, their prompts, routing, the ledger, reports and verification.

This package init imports nothing on purpose: `fleet.work.lifecycle`, `fleet.work.report` and
`fleet.work.scope` are also loaded by the hook's gates (`fleet.hooks.gates`), which Codex runs under
`python -S` (stdlib only, start-up in milliseconds). Import the modules you need directly.
"""
