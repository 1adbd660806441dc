"""Topic layout: co-partitioned tenant state, sanitised dispatch names, dispatch partitions."""

from __future__ import annotations

import pytest

from streams.config import Settings
from streams.kafka.topics import dispatch_topic_name, topic_specs

T0_MS = 1_672_531_200_000


def test_topic_specs_copartition_tenant_state_and_sanitise_dispatch_names() -> None:
    s = Settings(topics={"prefix": "p.", "partitions": 6}, app_id="app")
    specs = {t.name: t for t in topic_specs(s, ["meta/llama-2-70b", "small"])}
    for name in (
        "p.requests",
        "p.completions",
        "p.decisions",
        "app-tenant_state-changelog",
        "app-dedupe-changelog",
    ):
        assert specs[name].partitions == 6
    assert specs["app-intensity-changelog"].partitions == 1
    assert specs["p.policy"].topic_configs()["cleanup.policy"] == "compact"
    assert specs["p.requests"].topic_configs()["cleanup.policy"] == "delete"
    assert dispatch_topic_name(s, "meta/llama-2-70b") == "p.dispatch.meta_llama-2-70b"
    assert specs["p.dispatch.small"].partitions == 6  # default: topics.partitions


def test_dispatch_partitions_are_sized_apart_from_the_router() -> None:
    s = Settings(topics={"prefix": "p.", "partitions": 6, "dispatch_partitions": 2})
    specs = {t.name: t for t in topic_specs(s, ["small"])}
    assert specs["p.dispatch.small"].partitions == 2
    assert specs["p.requests"].partitions == specs["p.decisions"].partitions == 6
    with pytest.raises(ValueError):
        Settings(topics={"dispatch_partitions": 0})


def test_replication_and_min_insync_replicas_come_from_settings() -> None:
    from pydantic import ValidationError

    from streams.config import TopicSettings

    single = {s.name: s for s in topic_specs(Settings(topics={"prefix": "p."}), ["m"])}
    assert {s.topic_configs()["min.insync.replicas"] for s in single.values()} == {"1"}
    cluster = Settings(topics={"prefix": "p.", "replication_factor": 3, "min_insync_replicas": 2})
    specs = topic_specs(cluster, ["m"])
    assert {s.topic_configs()["min.insync.replicas"] for s in specs} == {"2"}
    assert any(s.name.endswith("tenant_state-changelog") for s in specs)  # changelogs too
    with pytest.raises(ValidationError, match="exceeds replication_factor"):
        TopicSettings(replication_factor=1, min_insync_replicas=2)
