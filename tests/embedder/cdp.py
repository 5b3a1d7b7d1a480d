"""A small headless-Chromium driver over the Chrome DevTools Protocol (no Playwright: it would
need a browser download). Debian's ``chromium`` package, one page, aiohttp's websocket client.

    async with Browser.launch(tmp_path) as browser:
        await browser.navigate("http://127.0.0.1:8088/judge")
        await browser.press("g")
        png = await browser.screenshot()
    keep_screenshot(png, "similarity_page.png", tmp_path)

Screenshots go to the test's tmp folder; ``PRODCAT_WRITE_SCREENSHOTS=DIR`` (e.g.
``benchmarks/results``) also writes them there, which is how the committed ones are regenerated.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["SCREENSHOTS_ENV", "Browser", "CDPError", "chromium_path", "keep_screenshot"]

SCREENSHOTS_ENV = "PRODCAT_WRITE_SCREENSHOTS"


class CDPError(RuntimeError):
    """A DevTools command failed or a page script threw."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def keep_screenshot(png: bytes, name: str, tmp_path: Path) -> Path:
    """Write ``png`` as ``tmp_path/name``, and as ``$PRODCAT_WRITE_SCREENSHOTS/name`` if that is set.

    Tests never write into the repository on their own: the committed screenshots under
    ``benchmarks/results`` change only when someone asks for it with the variable.
    """
    if not png.startswith(b"\x89PNG"):
        raise CDPError(f"expected a PNG screenshot, received {png[:8]!r}")
    path = tmp_path / name
    path.write_bytes(png)
    wanted = os.environ.get(SCREENSHOTS_ENV)
    if wanted:
        folder = Path(wanted)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """One headless Chromium process and its first page; ``close()`` kills it by PID."""

    def __init__(self, proc: subprocess.Popen, session: aiohttp.ClientSession,
                 ws: aiohttp.ClientWebSocketResponse) -> None:
        self.proc, self._session, self._ws = proc, session, ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    @classmethod
    async def launch(cls, profile_dir: Path, width: int = 1400, height: int = 1000,
                     timeout_s: float = 30.0) -> Browser:
        executable = chromium_path()
        if executable is None:
            raise CDPError("chromium is not on PATH (apt-get install -y chromium)")
        port = _free_port()
        profile_dir.mkdir(parents=True, exist_ok=True)
        log = (profile_dir / "chromium.log").open("wb")
        # its own process group: closing kills Chromium and its renderer/zygote children together
        proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={width},{height}",
             f"--user-data-dir={profile_dir}", f"--remote-debugging-port={port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
        log.close()  # the child has its own copy
        session = aiohttp.ClientSession()
        try:
            ws_url = await cls._page_ws_url(session, port, proc, timeout_s)
            ws = await session.ws_connect(ws_url, max_msg_size=0)
        except BaseException:
            await session.close()
            _kill(proc)
            raise
        browser = cls(proc, session, ws)
        await browser.send("Page.enable")
        await browser.send("Runtime.enable")
        return browser

    @staticmethod
    async def _page_ws_url(session: aiohttp.ClientSession, port: int, proc: subprocess.Popen,
                           timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CDPError(f"chromium exited with {proc.returncode} before DevTools answered")
            try:
                async with session.get(f"http://127.0.0.1:{port}/json") as resp:
                    pages = [t for t in await resp.json() if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.2)
        raise CDPError(f"chromium DevTools not answering on port {port} after {timeout_s}s")

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- protocol ------------------------------------------------------------------------------

    async def send(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        message_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self._ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise CDPError(f"DevTools connection closed while waiting for {method}")
                data = json.loads(message.data)
                if data.get("id") == message_id:
                    if "error" in data:
                        raise CDPError(f"{method}: {data['error']}")
                    return data["result"]
                if "method" in data:
                    self._events.append(data)

    async def _wait_event(self, method: str, timeout_s: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for i, event in enumerate(self._events):
                    if event["method"] == method:
                        return self._events.pop(i)
                message = await self._ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise CDPError(f"DevTools connection closed while waiting for {method}")
                data = json.loads(message.data)
                if "method" in data:
                    self._events.append(data)

    # --- what tests use ------------------------------------------------------------------------

    async def navigate(self, url: str, timeout_s: float = 30.0) -> None:
        """Open ``url`` and wait for its load event."""
        self._events.clear()
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigate {url}: {result['errorText']}")
        await self._wait_event("Page.loadEventFired", timeout_s)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a page expression (promises are awaited); page errors raise."""
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"page script failed: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout_s}s waiting for: {expression}")
            await asyncio.sleep(0.1)

    async def press(self, key: str) -> None:
        """Type one printable key (a real key event, as from the keyboard)."""
        code = f"Key{key.upper()}" if key.isalpha() else ""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": ord(key.upper())}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=key, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def type_text(self, text: str) -> None:
        """Insert text into the focused element, as an IME would."""
        await self.send("Input.insertText", text=text)

    async def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        result = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                 clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()
            _kill(self.proc)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of the Chromium this module started (by its PID), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives a leader that already exited
    except ProcessLookupError:
        pass
    proc.wait(10)
