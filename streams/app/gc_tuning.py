"""Garbage-collector settings for a long-lived worker process.

CPython's cyclic collector rescans every tracked object of a generation when that generation
is collected. A worker's heap after start-up is ~180k tracked objects (Faust, aiokafka, numpy,
the catalog) that live for the whole process, and every batch promotes short-lived records
into the old generation, so full collections came every second or so and took 70-140 ms
each: the largest single source of tail latency measured (benchmarks/RESULTS.md, "GC").

Two standard remedies (the same as Instagram's and CPython's docs for long-lived servers):
freeze the survivors of start-up and table recovery into the permanent generation, which
collections skip, and raise the young-generation threshold so a batch's records are freed by
reference counting before a collection can promote them.
"""

from __future__ import annotations

import gc


def raise_young_threshold(gen0: int) -> None:
    """Collect generation 0 after ``gen0`` net allocations (CPython's default is 700); the
    older generations' thresholds are left as they are. ``gen0 <= 0`` leaves the default."""
    if gen0 > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0, gen1, gen2)


def freeze_survivors() -> int:
    """Collect once, then move every surviving object to the permanent generation (after
    start-up or a table recovery: what is alive now lives long). Returns the frozen count.
    Frozen objects are still freed by reference counting; only cycles among them are not."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
