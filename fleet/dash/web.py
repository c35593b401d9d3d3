"""`fleet dash --web`: the same dashboard in a browser, served by textual-serve, behind a token.

textual-serve serves a page (its own bundled JavaScript, so it works offline) whose websocket starts
one dashboard process per browser tab (`fleet.dash.run`, the terminal app, on Textual's web driver)
and relays its screen and keys. fleet adds what a control surface needs on top:

- It binds 127.0.0.1 unless told otherwise, and binding any other address without `read_only`
  needs `expose_control` (the CLI's explicit flag): whoever reaches the port can then act.
- A new random token each start. The first line on stdout is `http://HOST:PORT/?token=TOKEN`. The
  page needs `?token=`; the websocket's path carries it (`/ws/TOKEN`: the page's script appends its
  own query to the websocket URL). Anything else but the bundled static files is refused with 403,
  compared in constant time. The token is a bearer secret: anyone who has the URL has the cockpit.
- `read_only` starts each dashboard read-only: every action is off, attach included (a browser
  cannot suspend to a terminal anyway; it says so in one line).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import shlex
import socket
import sys
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web
from rich.console import Console
from textual_serve.server import Server

from fleet.errors import InvalidInput

#: The address served when none is given: this machine only.
DEFAULT_HOST: Final = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, read_only: bool, expose_control: bool) -> None:
    """Refuse to serve the actions beyond this machine unless the caller said so explicitly."""
    if not is_loopback(host) and not read_only and not expose_control:
        raise InvalidInput(
            f"Serving the dashboard on {host} would let anyone who reaches that address and has the URL "
            "approve, send, stop and cancel.",
            hint="Add --read-only to serve a view only, or --i-know-this-exposes-control to serve the actions.",
            host=host)


def free_port(host: str) -> int:
    """A port free on `host` now (the OS picks it); the server binds it a moment later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        port: int = s.getsockname()[1]
        return port


def child_command(config_path: str | None, read_only: bool) -> str:
    """The shell command textual-serve runs for each browser tab: this interpreter, the dashboard."""
    code = f"import sys; from fleet.dash import run; sys.exit(run({config_path!r}, read_only={read_only!r}))"
    return shlex.join([sys.executable, "-P", "-c", code])  # -P: nothing imported from the cwd


class TokenServer(Server):
    """textual-serve's server with fleet's token on the page and the websocket, and a quiet stdout."""

    def __init__(self, command: str, host: str, port: int, token: str) -> None:
        url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        super().__init__(command, host=host, port=port, title="fleet dash", public_url=f"http://{url_host}:{port}")
        self.token = token
        self.console = Console(stderr=True)  # stdout carries the URL line only
        self.url = f"{self.public_url}/?token={token}"

    async def _make_app(self) -> web.Application:
        token = self.token
        ws_path = f"/ws/{token}"

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            path = request.path
            allowed = (path.startswith("/static/")
                       or (path == "/" and hmac.compare_digest(request.query.get("token", ""), token))
                       or hmac.compare_digest(path.encode(), ws_path.encode()))
            if not allowed:
                raise web.HTTPForbidden(text="fleet dash: this needs the token: open the URL fleet printed.\n")
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[guard])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get(ws_path, self.handle_websocket, name="websocket"),
            web.static("/static", self.statics_path, name="static"),
        ])
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    def initialize_logging(self) -> None:
        super().initialize_logging()
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # its lines carry the token

    async def on_startup(self, app: web.Application) -> None:
        self.console.print("fleet dash: serving in the browser; Ctrl+C stops it.")


def serve(config_path: str | None, *, host: str = DEFAULT_HOST, port: int | None = None, read_only: bool = False,
          expose_control: bool = False) -> int:
    """Serve the dashboard until interrupted; print the URL as the first line on stdout. Raises
    `InvalidInput` for a non-loopback `host` without `read_only` or `expose_control`."""
    check_exposure(host, read_only=read_only, expose_control=expose_control)
    server = TokenServer(child_command(config_path, read_only), host, port or free_port(host),
                         secrets.token_urlsafe(24))
    print(server.url, flush=True)
    server.serve()
    return 0
