"""Remote hosts: fleet's own operations run on another machine over one persistent `ssh` channel per
host (`channel`), speaking JSON lines (`protocol`) to `fleet remote-session` there.

Used by the service layer (status across hosts, `fleet hosts`); imports only the config, the errors and
the shared leaves. Nothing here listens on a port: the only transport is the system OpenSSH client.
"""
