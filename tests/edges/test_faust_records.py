"""The Faust Record classes match the schemas and round-trip through the orjson codec."""

from __future__ import annotations

import pytest

from streams.ingress import Reason, Rejected, Source, Stage
from streams.schema import dead_letter_record, load_schema, validation_errors
from streams.schema.faust_records import RECORD_TYPES


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_record_fields_are_the_schema_properties(name: str) -> None:
    fields = set(RECORD_TYPES[name]._options.fields)
    assert fields == set(load_schema(name)["properties"])


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_examples_round_trip_and_validate(name: str) -> None:
    cls = RECORD_TYPES[name]
    for ex in load_schema(name).get("examples", []):
        rec = cls.from_data(ex)
        rep = rec.to_representation()
        assert validation_errors(name, rep) == []
        assert {k: v for k, v in rep.items() if v is not None or k in ex} == ex
        assert cls.loads(rec.dumps()) == rec


def test_builder_output_loads_as_record() -> None:
    rej = Rejected("request", Stage.DECODE, Reason.EMPTY, "empty", b"", Source("t", 0, 1))
    built = dead_letter_record(rej, rejected_at_ms=3)
    rec = RECORD_TYPES["dead-letter"].from_data(built)
    assert rec.to_representation() == built
