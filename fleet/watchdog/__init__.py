"""The watchdog: policy (`[watchdog]` in fleet.toml), the pure decision, and the systemd user units.

Import the parts you need from their modules (`fleet.watchdog.policy`, `.decide`, `.approval`,
`.units`, `.systemd`); this package imports nothing on its own, so `fleet.config` can pull in the
policy schema without dragging in the rest.
"""
