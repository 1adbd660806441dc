"""The token reaches the store and nothing else: not logs, not reprs, not error messages."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from pydantic import SecretStr

from streams.config import InfluxSettings
from streams.metrics import InfluxSink, MetricsWriter, build_metrics

TOKEN = "s3cr3t-token-7f1e9a"


class _EchoAuthHandler(BaseHTTPRequestHandler):
    """Rejects every write and echoes the Authorization header back, like a hostile proxy."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        _EchoAuthHandler.seen.append(auth)
        body = f'{{"code":"unauthorized","message":"bad auth {auth}"}}'.encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _EchoAuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_token_is_sent_but_never_logged(
    echo_server: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = InfluxSettings(
        url=echo_server, token=SecretStr(TOKEN), max_retries=1, retry_backoff_ms=1
    )
    caplog.set_level(logging.DEBUG)
    sink = InfluxSink(settings)
    writer = MetricsWriter(sink, start=False, max_retries=1, retry_backoff_ms=1)
    writer.add_lines(["gar_test v=1 1"])
    stats = writer.flush()
    writer.close()

    assert _EchoAuthHandler.seen and TOKEN in _EchoAuthHandler.seen[-1]  # it did authenticate
    assert stats.dropped_write_failed_points == 1 and stats.write_errors >= 2
    logged = "\n".join(r.getMessage() + str(r.args) + str(r.exc_info) for r in caplog.records)
    assert any("metrics store write failing" in r.getMessage() for r in caplog.records)
    assert TOKEN not in logged
    out = capsys.readouterr()
    assert TOKEN not in out.out and TOKEN not in out.err
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    assert TOKEN not in repr(sink) and TOKEN not in repr(writer)


def test_build_metrics_disabled_is_noop() -> None:
    m = build_metrics(InfluxSettings(enabled=False))
    assert m.writer is None
