"""`fleet dash --web` (textual-serve behind fleet's token): a real server process on 127.0.0.1, real
HTTP and a real websocket that starts a real dashboard process; no Codex (the agents stay stopped).
The page in a real headless browser, and its screenshot, is tests/test_dash_screenshot.py."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from conftest import Fleet
from dashweb import served

from fleet.dash.web import check_exposure, child_command
from fleet.errors import InvalidInput


def status_of(url: str) -> int:
    for _ in range(100):  # the URL is printed just before the server binds
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError:
            asyncio.run(asyncio.sleep(0.1))
    raise AssertionError(f"{url} never answered")


def test_the_page_and_websocket_need_the_token(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    with served(f) as url:
        base, _, token = url.partition("/?token=")
        assert base.startswith("http://127.0.0.1:")
        assert len(token) >= 32
        assert status_of(base + "/") == 403
        assert status_of(base + "/?token=" + token[:-1] + "x") == 403
        assert status_of(base + "/ws") == 403
        assert status_of(f"{base}/ws/{token}x") == 403
        assert status_of(base + "/download/anything") == 403
        assert status_of(url) == 200
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
        assert f'data-session-websocket-url="ws://{base.removeprefix("http://")}/ws/{token}"' in page

        async def first_screen() -> bytes:
            import aiohttp

            ws_url = f"ws://{base.removeprefix('http://')}/ws/{token}?width=120&height=40"
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
                got = b""
                while b"agent-1" not in got:
                    msg = await asyncio.wait_for(ws.receive(), timeout=30)
                    assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), msg
                    got += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                return got

        assert b"agent-1" in asyncio.run(first_screen())


def test_a_new_token_each_start(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    with served(f) as first:
        pass
    with served(f) as second:
        pass
    assert first.partition("token=")[2] != second.partition("token=")[2]


def test_serving_beyond_loopback_needs_read_only_or_the_explicit_flag() -> None:
    with pytest.raises(InvalidInput, match="approve, send, stop and cancel") as refused:
        check_exposure("0.0.0.0", read_only=False, expose_control=False)
    assert "--i-know-this-exposes-control" in str(refused.value.hint)
    check_exposure("0.0.0.0", read_only=True, expose_control=False)
    check_exposure("192.0.2.1", read_only=False, expose_control=True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, read_only=False, expose_control=False)


def test_the_cli_refuses_a_non_loopback_host_with_actions_before_binding(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    proc = f.cli("dash", "--web", "--host", "0.0.0.0")
    assert proc.returncode == 2
    assert proc.stdout == ""  # no URL: nothing was served
    assert "invalid_input" in proc.stderr
    assert "--i-know-this-exposes-control" in proc.stderr


def test_read_only_reaches_every_dashboard_the_server_starts() -> None:
    assert "read_only=True" in child_command("/x/fleet.toml", True)
    assert "read_only=False" in child_command(None, False)
