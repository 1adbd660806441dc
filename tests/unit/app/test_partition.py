"""The batch partitioner picks the partitions of aiokafka's DefaultPartitioner (murmur2)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app.partition import default_partitions, murmur2_many


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_murmur2_many_equals_aiokafka(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [murmur2(k) for k in keys]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.binary(max_size=24)), max_size=30),
    st.integers(min_value=1, max_value=12),
)
def test_default_partitions_equal_the_default_partitioner(keys: list[bytes | None], n: int) -> None:
    parts = list(range(n))
    got = default_partitions(keys, parts)
    for key, p in zip(keys, got, strict=True):
        assert p in parts
        if key is not None:
            assert p == DefaultPartitioner()(key, parts, parts)


def test_request_ids_of_mixed_lengths() -> None:
    keys = [f"req-{i}".encode() for i in range(0, 5000, 7)] + [b"", b"x", b"\xff" * 9]
    assert murmur2_many(keys) == [murmur2(k) for k in keys]
