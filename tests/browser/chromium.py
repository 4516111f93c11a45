"""Headless Chromium driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`).

No port, no WebSocket library: Chromium reads commands on its fd 3 and writes answers and events on fd 4,
each a JSON object ended by a NUL byte. What a test needs of it: open a URL, collect every console message,
uncaught exception, log entry and network request the page makes, evaluate an expression, take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Debian's package installs `chromium`; other systems call it one of these.
BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_binary() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


@dataclass
class Page:
    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown
    log_entries: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def errors(self) -> list[str]:
        """Everything a person would see as red in the console."""
        found = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in c.get("args", []))
            for c in self.console
            if c.get("type") in ("error", "assert")
        ]
        found += [
            e["exceptionDetails"].get("text", "")
            + " "
            + json.dumps(e["exceptionDetails"].get("exception", {}).get("description", ""))
            for e in self.exceptions
        ]
        found += [
            f"{e['entry'].get('source')}: {e['entry'].get('text')}"
            for e in self.log_entries
            if e["entry"].get("level") == "error"
        ]
        return found


class Chromium:
    def __init__(self, binary: str, profile: Path, *, width: int = 1280, height: int = 1800) -> None:
        commands_r, self._commands = os.pipe()  # we write commands, Chromium reads them on its fd 3
        self._answers, answers_w = os.pipe()  # Chromium writes on its fd 4, we read
        argv = [
            binary,
            "--headless",
            "--no-sandbox",  # as root in a container there is no user namespace for the sandbox
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "about:blank",
        ]
        # bash (not sh: dash takes single-digit fds only) puts our pipe ends on fds 3 and 4, where Chromium reads.
        script = f'exec "$0" "$@" 3<&{commands_r} 4>&{answers_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, *argv],
            pass_fds=(commands_r, answers_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(commands_r)
        os.close(answers_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- the protocol
    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("id") == self._next_id:
                    del self._events[i]
                    if "error" in event:
                        raise BrowserError(f"{method}: {event['error']}")
                    return event.get("result", {})
            self._read(deadline)

    def _read(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError("Chromium did not answer in time")
        ready, _, _ = select.select([self._answers], [], [], remaining)
        if not ready:
            raise BrowserError("Chromium did not answer in time")
        chunk = os.read(self._answers, 1 << 20)
        if not chunk:
            stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            raise BrowserError(f"Chromium exited (code {self.process.poll()}): {stderr[-2000:]}")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        self._events.extend(json.loads(m) for m in messages if m)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[i]
                    return event
            self._read(deadline)

    def drain(self, seconds: float) -> None:
        """Read whatever events arrive within `seconds` (late console messages, a script's timers)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._read(deadline)
        except BrowserError as exc:
            if "in time" not in str(exc):
                raise

    # ---------------------------------------------------------------- what a test does
    def open(self, url: str) -> tuple[Page, str]:
        """Load `url` in the page target; returns what it did and the session to talk to it."""
        targets = self.send("Target.getTargets")["targetInfos"]
        page_target = next(t for t in targets if t["type"] == "page")
        session = self.send("Target.attachToTarget", {"targetId": page_target["targetId"], "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired")
        self.drain(1.0)
        page = Page()
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                page.console.append(params)
            elif method == "Runtime.exceptionThrown":
                page.exceptions.append(params)
            elif method == "Log.entryAdded":
                page.log_entries.append(params)
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        self._events = [e for e in self._events if "id" in e]
        return page, session

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
