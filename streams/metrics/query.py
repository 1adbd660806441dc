"""Read side of the metrics store: Flux over InfluxDB's ``/api/v2/query`` (influxdb-client).

Used by ``gar report``, the dashboard tests and the integration tests, so the Flux a dashboard
panel holds is exactly the Flux that runs against the real store.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.config import InfluxSettings

# Columns of a Flux table that say where a row came from, not which series it is.
_NOT_LABELS = frozenset({"_start", "_stop", "_time", "_value", "result", "table", "_measurement"})


class QueryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Series:
    """One Flux table: its group key (tags, and ``_field`` when grouped by it) and its rows."""

    labels: dict[str, str]
    timestamps_s: list[float]
    values: list[float]


class FluxClient:
    """Run Flux and get plain ``Series``. The token stays inside influxdb-client."""

    def __init__(self, settings: InfluxSettings, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s

    @property
    def url(self) -> str:
        return self._settings.url.rstrip("/")

    @property
    def bucket(self) -> str:
        return self._settings.bucket

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def tables(self, flux: str) -> list[Any]:
        """The raw ``FluxTable`` list (for callers that need other columns than _value)."""
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.rest import ApiException

        with InfluxDBClient(
            url=self.url,
            token=self._settings.token.get_secret_value(),
            org=self._settings.org,
            timeout=int(self._timeout_s * 1000),
        ) as client:
            try:
                return list(client.query_api().query(flux, org=self._settings.org))
            except ApiException as exc:
                # the body is the server's Flux error (no credentials in it: auth errors are 401)
                detail = exc.body if exc.status != 401 else "unauthorized"
                raise QueryError(f"flux query failed ({exc.status}): {detail}") from None

    def query(self, flux: str) -> list[Series]:
        """Every table as a ``Series`` of its finite numeric ``_value``s (booleans as 0/1)."""
        out = []
        for table in self.tables(flux):
            key = [c.label for c in table.get_group_key()]
            labels: dict[str, str] = {}
            ts: list[float] = []
            vs: list[float] = []
            for rec in table.records:
                if not labels:
                    labels = {k: str(rec.values.get(k)) for k in key if k not in _NOT_LABELS}
                value = _number(rec.values.get("_value"))
                if value is None:
                    continue
                # a reduced table (sum over the range, no window) has no _time: use its stop
                when = rec.values.get("_time") or rec.values.get("_stop")
                ts.append(when.timestamp() if isinstance(when, datetime) else math.nan)
                vs.append(value)
            out.append(Series(labels, ts, vs))
        return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None
