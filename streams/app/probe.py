"""The client side of the worker's probes: ``gar probe live|ready`` for exec healthchecks.

It finds the worker's web server from the same Settings (``worker.web_port``, or the port a
worker started with port 0 wrote to ``<data_dir>/web-port``) and asks ``/healthz`` or ``/readyz``.
Standard library only: a healthcheck runs every few seconds and must start fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

from streams.config import Settings

WEB_PORT_FILE = "web-port"
PATHS = {"live": "/healthz", "ready": "/readyz"}


def web_port_path(settings: Settings) -> Path:
    return settings.worker_data_dir() / WEB_PORT_FILE


def probe_url(settings: Settings, check: Literal["live", "ready"]) -> str | None:
    """The probe's URL, or None while a port-0 worker has not written its port yet."""
    port = settings.worker.web_port
    if port == 0:
        try:
            port = int(web_port_path(settings).read_text().strip())
        except (OSError, ValueError):
            return None
    host = settings.worker.web_bind
    if host in ("0.0.0.0", "", "::"):  # bound to every interface: loopback reaches it
        host = "127.0.0.1"
    return f"http://{host}:{port}{PATHS[check]}"


def probe(url: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:  # 503: the body says why
        try:
            return int(exc.code), json.loads(exc.read() or b"{}")
        except ValueError:
            return int(exc.code), {}
    except (OSError, ValueError) as exc:
        return 0, {"error": str(exc)}


def run(check: Literal["live", "ready"], timeout_s: float = 3.0, verbose: bool = False) -> int:
    """Exit code of one probe: 0 when the worker answers 200, else 1 (with the reason)."""
    url = probe_url(Settings(), check)
    if url is None:
        print("no web port published yet (worker starting, or web server disabled)")
        return 1
    status, body = probe(url, timeout_s)
    if verbose or status != 200:
        print(json.dumps({"url": url, "status": status, **body}, indent=2))
    return 0 if status == 200 else 1


if __name__ == "__main__":  # `python -m streams.app.probe ready`: no CLI imports, ~0.25 s CPU
    import sys

    args = sys.argv[1:]
    if not args or args[0] not in PATHS:
        sys.exit(f"usage: python -m streams.app.probe {{{'|'.join(PATHS)}}} [-v]")
    sys.exit(run("live" if args[0] == "live" else "ready", verbose="-v" in args[1:]))
