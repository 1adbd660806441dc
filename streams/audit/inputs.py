"""Follow each decision to the request it names (``request_source`` topic/partition/offset) and
check that the request there is the one that was decided: same id, tenant, dataset, event time.

A referenced offset that is no longer in the topic (retention) cannot be checked and is listed
as unverifiable, not as a mismatch.
"""

from __future__ import annotations

from collections import defaultdict

from streams.audit.reader import DecisionRow, ReadRange, read_decisions
from streams.audit.report import Mismatch
from streams.config import Settings

CHECKED_FIELDS = ("request_id", "tenant", "dataset", "ts_ms")


def check_request_inputs(
    settings: Settings, rows: list[DecisionRow], idle_ms: int = 1_000
) -> tuple[int, list[Mismatch], list[str]]:
    """(requests checked, mismatches, unverifiable locations)."""
    refs: dict[tuple[str, int], list[tuple[int, DecisionRow]]] = defaultdict(list)
    for row in rows:
        src = (row.record or {}).get("request_source")
        if isinstance(src, dict) and isinstance(src.get("offset"), int) and src["offset"] >= 0:
            refs[(str(src.get("topic")), int(src.get("partition", -1)))].append(
                (int(src["offset"]), row)
            )
    checked, mismatches, missing = 0, [], []
    for (topic, partition), wanted in refs.items():
        lo = min(o for o, _ in wanted)
        hi = max(o for o, _ in wanted) + 1
        try:
            found = read_decisions(
                settings,
                ReadRange(start_offset=lo, end_offset=hi, partitions=(partition,)),
                topic=topic,
                idle_ms=idle_ms,
            )
        except LookupError:
            found = []
        by_offset = {r.offset: r for r in found}
        for offset, row in wanted:
            req = by_offset.get(offset)
            if req is None or req.record is None:
                missing.append(f"{topic}[{partition}]@{offset} (for {row.where})")
                continue
            checked += 1
            rec = row.record or {}
            for name in CHECKED_FIELDS:
                if rec.get(name) != req.record.get(name):
                    mismatches.append(
                        Mismatch(
                            row.topic,
                            row.partition,
                            row.offset,
                            rec.get("request_id")
                            if isinstance(rec.get("request_id"), str)
                            else None,
                            rec.get("tenant") if isinstance(rec.get("tenant"), str) else None,
                            f"request_source.{name}",
                            rec.get(name),
                            req.record.get(name),
                        )
                    )
    return checked, mismatches, missing
