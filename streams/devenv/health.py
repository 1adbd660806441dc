"""Health probes for the local broker and metrics store (short timeouts, never raise)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from streams.devenv.process import DevProcessError

_API_VERSIONS_KEY = 18


class PortTakenError(DevProcessError):
    """A service port is already bound by a process we did not start."""


def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ensure_port_free(host: str, port: int, grace_s: float = 10.0) -> None:
    """Raise unless ``port`` is free (a just-stopped server may need a moment to let go)."""
    deadline = time.monotonic() + grace_s
    while tcp_open(host, port):
        if time.monotonic() > deadline:
            raise PortTakenError(f"port {host}:{port} is taken by another process")
        time.sleep(0.2)


def kafka_api_versions_ok(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Send a raw ApiVersions v0 request and check the broker answers with error code 0."""
    client_id = b"gar-dev-health"
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    if len(payload) < 6:
        return False
    correlation_id, error_code = struct.unpack(">ih", payload[:6])
    ok: bool = correlation_id == 7 and error_code == 0
    return ok


def kafka_metadata_ok(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """A real client round-trip: the cluster reports at least one live broker."""

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
            return bool(cluster.get("brokers"))
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    try:
        return _run_sync(probe)
    except Exception:
        return False


def kafka_healthy(host: str, port: int) -> bool:
    return kafka_api_versions_ok(host, port) and kafka_metadata_ok(f"{host}:{port}")


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _run_sync(make: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
    """asyncio.run, also when called from inside a running loop (async tests): use a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _recv_exact(sock: socket.socket, n_bytes: int) -> bytes:
    buf = bytearray()
    while len(buf) < n_bytes:
        chunk = sock.recv(n_bytes - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)
