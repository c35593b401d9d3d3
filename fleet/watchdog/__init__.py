"""The watchdog: the pure decision, the approval judge, the approve policy file, and the systemd units.

Its settings, the `[watchdog]` table of fleet.toml, are `fleet.config.watchdog`'s. Import the parts
you need from their modules (`fleet.watchdog.decide`, `.facts`, `.approval`, `.policyfile`,
`.units`, `.systemd`); this package imports nothing on its own, so fleet's hook process can load the
judge and the policy file without the rest.
"""
