from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.helpers import write_catalog
from streams.config import Settings


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.json")


@pytest.fixture(autouse=True)
def _delete_test_topics(
    request: pytest.FixtureRequest, topic_prefix: str, app_id: str
) -> Iterator[None]:
    """Integration tests create ~20 topics each on the shared broker: remove them afterwards."""
    yield
    if request.node.get_closest_marker("integration") is None:
        return

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=Settings().kafka.bootstrap_servers)
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics()
                    if t.startswith(topic_prefix) or t.startswith(f"{app_id}-")]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    try:
        asyncio.run(delete())
    except Exception as exc:  # cleanup only; never fail a test on it
        print(f"topic cleanup failed: {exc}")
