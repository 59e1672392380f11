"""Headless Debian Chromium driven over the Chrome DevTools Protocol, for the dashboard tests.

No Playwright or Selenium: Chromium speaks CDP over a pair of pipes (``--remote-debugging-pipe``:
it reads commands on fd 3 and writes replies and events on fd 4, each message JSON ended by a
NUL byte), so this module needs nothing but the browser. It is asyncio-native: the app under
test runs on the same event loop, so nothing here may block it.

The browser runs the page's real JavaScript; :meth:`Page.click` dispatches real mouse events at
the element's position, :meth:`Page.wait_for` polls a JavaScript expression until it is truthy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: flags for a closed network: no background traffic, no first-run UI, no sandbox (root)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
)

# Runs in the child: move the pipe ends to fds 3 and 4, then become Chromium.
_LAUNCHER = (
    "import fcntl, os, sys\n"
    "r = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
    "w = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
    "os.dup2(r, 3)\n"
    "os.dup2(w, 4)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One Chromium process and its CDP connection."""

    def __init__(self, proc: asyncio.subprocess.Process, write_fd: int, read_fd: int) -> None:
        self.proc = proc
        self._write_fd = write_fd
        self._read_fd = read_fd
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._buffer = b""
        #: every event received, in order, as (session id, method, params)
        self.events: list[tuple[str | None, str, dict[str, Any]]] = []
        self._event_seen = asyncio.Event()
        loop = asyncio.get_running_loop()
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._read_fd, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:  # the browser went away: fail everyone waiting
            asyncio.get_running_loop().remove_reader(self._read_fd)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CdpError("Chromium closed the DevTools pipe"))
            return
        self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                fut = self._pending.pop(message["id"]) if message["id"] in self._pending else None
                if fut is not None and not fut.done():
                    fut.set_result(message)
            else:
                self.events.append(
                    (message.get("sessionId"), message["method"], message.get("params", {}))
                )
                self._event_seen.set()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        within: float = 30.0,
    ) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        data = json.dumps(message).encode() + b"\0"
        while data:  # the pipe is blocking; messages are small and Chromium reads promptly
            written = os.write(self._write_fd, data)
            data = data[written:]
        reply = await asyncio.wait_for(fut, within)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(self, *, isolated: bool = False) -> Page:
        """A new tab; ``isolated`` gives it a fresh browser context (no cookies shared with
        other pages, like a private window)."""
        params: dict[str, Any] = {"url": "about:blank"}
        if isolated:
            context = await self.send("Target.createBrowserContext")
            params["browserContextId"] = context["browserContextId"]
        target = await self.send("Target.createTarget", params)
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close", within=5)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._read_fd)
        for fd in (self._write_fd, self._read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


#: an iPhone 12-15 class phone in portrait, CSS pixels
PHONE = (390, 844)


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        #: the emulated viewport (width, height, mobile), if any
        self.viewport: tuple[int, int, bool] | None = None

    async def emulate(self, width: int, height: int, *, mobile: bool = True) -> None:
        """Lay pages out for a ``width`` x ``height`` CSS-pixel screen (a phone by default):
        DevTools' device metrics override, with the mobile meta-viewport behaviour."""
        self.viewport = (width, height, mobile)
        await self._apply_viewport()

    async def _apply_viewport(self) -> None:
        if self.viewport is None:
            await self.send("Emulation.clearDeviceMetricsOverride")
            return
        width, height, mobile = self.viewport
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    async def horizontal_overflow(self) -> tuple[int, int]:
        """(document width, viewport width): the page scrolls sideways when the first is
        larger."""
        sizes = await self.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        return int(sizes[0]), int(sizes[1])

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [p for s, m, p in self.browser.events if s == self.session and m == method]

    # -- script ------------------------------------------------------------------------
    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page; returns its (JSON) value, awaiting promises."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"script failed: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, *, within: float = 20.0, what: str = "") -> Any:
        """Poll ``expression`` until truthy (navigations in between are tolerated)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last: Any = None
        while True:
            try:
                last = await self.evaluate(expression)
                if last:
                    return last
            except CdpError as err:  # e.g. the context was destroyed by a navigation
                last = err
            if loop.time() > deadline:
                raise AssertionError(
                    f"timed out after {within}s waiting for {what or expression}; last={last!r}"
                )
            await asyncio.sleep(0.1)

    # -- navigation --------------------------------------------------------------------
    async def goto(self, url: str) -> None:
        await self._navigating(self.send("Page.navigate", {"url": url}))

    async def _navigating(self, action: Any) -> None:
        """Run ``action`` (which navigates) and wait until the new document has loaded."""
        with contextlib.suppress(CdpError):
            await self.evaluate("window.__cdpOld = true")
        await action
        await self.wait_for(
            "!window.__cdpOld && document.readyState === 'complete'", what="page load"
        )

    async def url(self) -> str:
        return str(await self.evaluate("location.href"))

    # -- input ---------------------------------------------------------------------------
    async def _center(self, selector: str) -> tuple[float, float]:
        box = await self.evaluate(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el) return null;
                el.scrollIntoView({{block: 'center'}});
                // an inline element wrapped over two lines has a union box whose centre
                // may fall between its fragments: aim at the first fragment instead
                const r = el.getClientRects()[0] || el.getBoundingClientRect();
                return [r.left + r.width / 2, r.top + r.height / 2];
            }})()"""
        )
        if not box:
            raise AssertionError(f"no element matches {selector}")
        return float(box[0]), float(box[1])

    async def click(self, selector: str, *, navigates: bool = False) -> None:
        """A real left click (mouse events at the element's centre)."""

        async def press() -> None:
            x, y = await self._center(selector)
            await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
            for kind in ("mousePressed", "mouseReleased"):
                await self.send(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                )

        if navigates:
            await self._navigating(press())
        else:
            await press()

    async def type(self, selector: str, text: str) -> None:
        """Focus the field and type ``text`` into it as keyboard input."""
        await self.click(selector)
        await self.send("Input.insertText", {"text": text})

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the viewport), at the emulated width if any."""
        height = await self.evaluate("document.documentElement.scrollHeight")
        width, min_height, mobile = self.viewport or (1280, 900, False)
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": width,
                "height": int(min(max(height or min_height, min_height), 6000)),
                "deviceScaleFactor": 1,
                "mobile": mobile,
            },
        )
        try:
            shot = await self.send("Page.captureScreenshot", {"format": "png"})
        finally:
            await self._apply_viewport()
        data = base64.b64decode(shot["data"])

        def save() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(save)
        return path

    # -- what went wrong -----------------------------------------------------------------
    def dialogs(self) -> list[dict[str, Any]]:
        """JavaScript dialogs the page opened (``alert(1)`` from an injection shows here)."""
        return self.events("Page.javascriptDialogOpening")

    def script_errors(self) -> list[str]:
        """Uncaught exceptions and CSP violations the page reported."""
        errors = [
            str(p.get("exceptionDetails", {}).get("text"))
            for p in self.events("Runtime.exceptionThrown")
        ]
        errors += [
            str(p["entry"].get("text"))
            for p in self.events("Log.entryAdded")
            if p.get("entry", {}).get("level") == "error"
            and p["entry"].get("source") in ("security", "javascript")
        ]
        return errors


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    """Start headless Chromium with a fresh profile; stopped and cleaned up on exit."""
    profile = Path(tempfile.mkdtemp(prefix="incidentflow-chromium-"))
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    for fd in (to_browser_w, from_browser_r):
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LAUNCHER,
        str(to_browser_r),
        str(from_browser_w),
        executable,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        pass_fds=(to_browser_r, from_browser_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_browser_r)
    os.close(from_browser_w)
    browser = Browser(proc, to_browser_w, from_browser_r)
    try:
        await browser.send("Browser.getVersion", within=60)
        yield browser
    finally:
        await browser.close()
        shutil.rmtree(profile, ignore_errors=True)
