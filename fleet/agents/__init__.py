"""Agents: the Codex TUI in the fleet's private tmux server, its journal and its exact state.

`observe` reads an agent's state and journal, `launch` starts it, `send` types a prompt and waits for
its receipt, `stop` interrupts and stops it, and `runtime` is the one facade over the four that the
service layer uses; `lead` is a lead's launch wiring (its plugin is the service's to install);
`state` and `rollout` (pure) classify and read turn ends; `journal` appends, compacts and looks up
requests; `oplock` runs one operation at a time per agent; `procs` signals only the process fleet
started; `tmux` is the only tmux/libtmux user; `codex` the only place that knows Codex's flags and
files; `approvals` the approval hold's answer file and journal records; `rawlog` the standalone
program tmux runs (the one Codex runs is `fleet.hooks.receiver`).
"""
