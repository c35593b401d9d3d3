"""`fleet dash`: a live Textual cockpit over the operation registry (and `fleet attach`'s picker).

Textual and textual-serve are imported in this package only (`app`, `screens`, `web`), and only
once `run` or `serve_web` is called: importing `fleet.dash` loads neither, so no other command pays
for them. Modules: `model` (the pure view model), `client` (registry calls and the poller, holder
`dash:<user>`), `screens` (dialogs), `app` (the Textual app), `web` (the same app in a browser
through textual-serve, behind a token).
"""

from __future__ import annotations

import os
import sys

__all__ = ["run", "serve_web"]


def run(config_path: str | None, *, picker: bool = False, read_only: bool = False) -> int:
    """Run the dashboard in this terminal until the user quits; return the exit status.

    `picker`: `fleet attach` without an agent; Enter on an agent ends the dashboard and this process
    becomes tmux attached to that agent's session (like `fleet attach NAME`), q returns 0."""
    import subprocess

    from fleet.untrusted import escape_terminal

    from .app import DashApp
    from .client import Client, attach_env, error_line

    client = Client(config_path)
    selected: str | None = None
    note: str | None = None
    try:
        while True:
            app = DashApp(client, picker=picker, read_only=read_only, selected=selected, note=note)
            app.run()
            if app.attach_to is None:
                return app.return_code or 0
            selected = app.attach_to
            try:
                argv = client.attach_argv(selected)
            except Exception as exc:  # the session went away between Enter and here
                if picker:
                    print(escape_terminal(f"fleet: {error_line(exc)}"), file=sys.stderr)
                    return 1
                note = error_line(exc)
                continue
            if picker:
                break
            subprocess.run(argv, env=attach_env(), check=False)  # back here on detach
            note = f"back from {selected}"
    finally:
        client.close()
    os.execvpe(argv[0], argv, attach_env())  # picker: this process becomes the attach
    return 1


def serve_web(config_path: str | None, *, host: str = "127.0.0.1", port: int | None = None, read_only: bool = False,
              expose_control: bool = False) -> int:
    """`fleet dash --web`: serve the dashboard to a browser until interrupted (see `fleet.dash.web`)."""
    from .web import serve

    return serve(config_path, host=host, port=port, read_only=read_only, expose_control=expose_control)
