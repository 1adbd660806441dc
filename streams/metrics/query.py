"""Read side of the metrics store: PromQL/MetricsQL over VictoriaMetrics' HTTP API.

Used by ``gar report``, the dashboard tests and the integration tests, so the queries a
dashboard holds are exactly the queries that run against the real store.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class QueryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    timestamps_s: list[float]
    values: list[float]


class PromClient:
    def __init__(
        self, url: str, timeout_s: float = 10.0, extra_labels: dict[str, str] | None = None
    ) -> None:
        """``extra_labels`` are enforced on every series selector (VictoriaMetrics
        ``extra_label``): how a report or a test looks at one worker's or one run's data."""
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._extra = [f"{k}={v}" for k, v in (extra_labels or {}).items()]

    def with_labels(self, **labels: str) -> PromClient:
        return PromClient(self._url, self._timeout_s, labels)

    def _get(self, path: str, params: dict[str, str]) -> Any:
        pairs = list(params.items()) + [("extra_label", x) for x in self._extra]
        data = urllib.parse.urlencode(pairs).encode()
        req = urllib.request.Request(f"{self._url}{path}", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise QueryError(f"{path} {exc.code}: {exc.read()[:500]!r}") from exc
        if body.get("status") != "success":
            raise QueryError(f"{path}: {body}")
        return body["data"]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self._url}/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def force_flush(self) -> None:
        """Make just-written samples searchable now (VictoriaMetrics buffers ~1-2 s)."""
        with urllib.request.urlopen(f"{self._url}/internal/force_flush", timeout=self._timeout_s):
            pass

    def query(self, expr: str, time_s: float | None = None) -> list[Series]:
        params = {"query": expr, "nocache": "1"}
        if time_s is not None:
            params["time"] = f"{time_s:.3f}"
        data = self._get("/api/v1/query", params)
        return (
            [_series(r) for r in data.get("result", [])]
            if data["resultType"] in ("vector", "matrix")
            else []
        )

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float) -> list[Series]:
        params = {
            "query": expr,
            "start": f"{start_s:.3f}",
            "end": f"{end_s:.3f}",
            "step": f"{max(step_s, 0.001):.3f}s",
            "nocache": "1",
        }
        data = self._get("/api/v1/query_range", params)
        return [_series(r) for r in data.get("result", [])]

    def label_values(self, label: str, match: str) -> list[str]:
        """What Grafana's ``label_values(match, label)`` variable query lists."""
        data = self._get(f"/api/v1/label/{label}/values", {"match[]": match})
        return [str(x) for x in data]

    def series_names(self, match: str) -> list[str]:
        data = self._get("/api/v1/label/__name__/values", {"match[]": match})
        return [str(x) for x in data]


def _series(result: dict[str, Any]) -> Series:
    pairs = result["values"] if "values" in result else [result["value"]]
    return Series(
        labels={str(k): str(v) for k, v in result["metric"].items()},
        timestamps_s=[float(t) for t, _ in pairs],
        values=[float(v) for _, v in pairs],
    )
