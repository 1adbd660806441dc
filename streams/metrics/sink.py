"""Where encoded lines go. The writer only knows ``LineSink``; ``InfluxSink`` is the real one."""

from __future__ import annotations

from typing import Protocol

from streams.config import InfluxSettings


class LineSink(Protocol):
    def write_lines(self, lines: list[str]) -> None:
        """Write synchronously; raise on any failure (the writer retries and counts)."""

    def close(self) -> None: ...


class InfluxSink:
    """``influxdb-client`` v2 write API, synchronous, with the client's own retries off.

    Retries live in the writer's flush loop so that they are bounded and counted. The token is
    read from the ``SecretStr`` only here and handed to the client; it is never formatted into a
    message.
    """

    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._bucket = settings.bucket
        self._org = settings.org
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=settings.timeout_ms,
            retries=False,
            enable_gzip=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write_lines(self, lines: list[str]) -> None:
        self._api.write(
            bucket=self._bucket,
            org=self._org,
            record=lines,
            write_precision="ms",  # type: ignore[arg-type]
        )

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return f"InfluxSink(bucket={self._bucket!r}, org={self._org!r})"
