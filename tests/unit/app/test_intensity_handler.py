"""IntensityHandler without a broker: readings become each zone's trimmed history in the
replicated table and its changelog; a bad message is one dead letter with its reason."""

from __future__ import annotations

import asyncio

import orjson
from support.fake_producer import FakeProducer
from support.handlers import DEAD_LETTER_TOPIC, NOW_MS, SideInputWorld, message

from streams.app.intensity_handler import IntensityHandler
from streams.app.sink import BatchSink
from streams.core.intensity import MAX_HISTORY_READINGS

T0_MS = 1_672_531_200_000
HOUR_MS = 3_600_000


def reading(zone: str, ts_ms: int, value: float) -> dict[str, object]:
    return {
        "schema_version": 1,
        "zone": zone,
        "intensity_g_per_kwh": value,
        "ts_ms": ts_ms,
        "source": "test",
        "signal_type": "average",
        "estimated": False,
    }


def run(world: SideInputWorld, values: list[bytes | None]) -> FakeProducer:
    handler = IntensityHandler(
        world.views,
        world.ingress,
        world.intensity_store,
        "t.intensity-changelog",
        world.dead_letters,
        world.counters,
        wall_ms=lambda: NOW_MS,
    )
    prod = FakeProducer()
    sink = BatchSink(prod)
    handler.handle([message("t.carbon", v, i) for i, v in enumerate(values)], sink)
    asyncio.run(sink.flush())
    return prod


def test_readings_extend_the_zone_history_trimmed_to_a_day() -> None:
    world = SideInputWorld()
    # A stored history (what the table held before) plus new readings, one out of order and
    # one more than a day older than the newest.
    world.intensity_store[b"GB"] = orjson.dumps([reading("GB", T0_MS, 200.0)])
    batch = [
        orjson.dumps(reading("GB", T0_MS + 30 * HOUR_MS, 150.0)),
        orjson.dumps(reading("GB", T0_MS + 10 * HOUR_MS, 180.0)),
        orjson.dumps(reading("SE", T0_MS, 40.0)),
    ]
    prod = run(world, batch)
    gb = [
        (r["ts_ms"], r["intensity_g_per_kwh"]) for r in orjson.loads(world.intensity_store[b"GB"])
    ]
    assert gb == [(T0_MS + 10 * HOUR_MS, 180.0), (T0_MS + 30 * HOUR_MS, 150.0)]
    assert [r["zone"] for r in orjson.loads(world.intensity_store[b"SE"])] == ["SE"]
    changelog = {k: v for _, k, v in prod.records("t.intensity-changelog")}
    assert changelog == {b"GB": world.intensity_store[b"GB"], b"SE": world.intensity_store[b"SE"]}
    assert world.counters.intensity_readings == 3
    assert prod.records(DEAD_LETTER_TOPIC) == []


def test_history_keeps_at_most_the_newest_readings() -> None:
    world = SideInputWorld()
    n = MAX_HISTORY_READINGS + 10
    batch = [orjson.dumps(reading("GB", T0_MS + i * 60_000, float(i))) for i in range(n)]
    run(world, batch)
    kept = orjson.loads(world.intensity_store[b"GB"])
    assert len(kept) == MAX_HISTORY_READINGS
    assert kept[0]["intensity_g_per_kwh"] == float(n - MAX_HISTORY_READINGS)


def test_a_bad_reading_is_one_dead_letter_and_changes_nothing() -> None:
    world = SideInputWorld()
    prod = run(world, [b"{oops", orjson.dumps(reading("GB", T0_MS, -5.0))])
    dead = [orjson.loads(v) for _, _, v in prod.records(DEAD_LETTER_TOPIC)]
    assert [(d["stage"], d["reason"]) for d in dead] == [
        ("decode", "invalid_json"),
        ("validate", "out_of_range"),
    ]
    assert all(d["source"]["offset"] in (0, 1) for d in dead)
    assert world.intensity_store == {} and world.counters.dead_letters == 2
    assert any(line.startswith("gar_dead_letters,") for line in world.metric_lines())
