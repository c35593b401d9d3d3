"""Work: assignments, their prompts, routing, the ledger, reports and verification.

This package init imports nothing on purpose: `fleet.work.report`, `fleet.work.scope` and
`fleet.work.hookpolicy` are also loaded by the hook receiver, which Codex runs under `python -S`
(stdlib only, start-up in milliseconds). Import the modules you need directly.
"""
