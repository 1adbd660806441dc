"""A small typed producer for users: publish routing requests to the requests topic.

Example::

    from streams.client import GarClient

    async with GarClient.from_env() as gar:            # GAR_KAFKA__*, GAR_TOPICS__* settings
        rid = await gar.submit(
            gar.request(tenant="acme", dataset="gsm8k", input_tokens=180, client_region="europe")
        )
        print("routed as", rid)                        # decision on <prefix>decisions, key acme

Requests are keyed by tenant (the budget scope, so one tenant's requests stay in order on one
partition) and validated with the same parser the router uses before they leave the process,
so a bad request fails here with a ``ValueError`` naming the reason instead of becoming a
dead letter. The producer is idempotent (``acks=all``, ``enable_idempotence``): retries after
a broker hiccup never duplicate a record, and the router dedupes by ``request_id`` anyway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.core.inputs import Request
from streams.ingress.rejected import Rejected
from streams.ingress.requests import parse_request
from streams.kafka.clients import client_kwargs
from streams.schema.records import encode, request_record


class GarClient:
    """Async producer of ``requests.v1`` records (one ``AIOKafkaProducer`` inside)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        linger_ms: int = 5,
        **producer_options: Any,
    ) -> None:
        self.settings = settings or Settings()
        t = self.settings.topics
        self.topic = t.name(t.requests)
        self._producer = AIOKafkaProducer(
            **client_kwargs(self.settings.kafka),
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            **producer_options,
        )
        self._started = False

    @classmethod
    def from_env(cls, **producer_options: Any) -> GarClient:
        return cls(Settings(), **producer_options)

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def __aenter__(self) -> GarClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def request(
        *,
        tenant: str,
        dataset: str,
        input_tokens: int,
        client_region: str,
        output_tokens_est: int | None = None,
        request_id: str | None = None,
        ts_ms: int | None = None,
        **overrides: Any,
    ) -> Request:
        """A ``Request`` with a fresh id and the current time as event time, unless given.

        ``overrides``: ``floor``, ``latency_cap_ms``, ``allow_models``, ``deny_models``,
        ``allow_regions``, ``deny_regions`` (lists become tuples).
        """
        for name in ("allow_models", "deny_models", "allow_regions", "deny_regions"):
            if overrides.get(name) is not None:
                overrides[name] = tuple(overrides[name])
        return Request(
            request_id=request_id or uuid.uuid4().hex,
            tenant=tenant,
            dataset=dataset,
            input_tokens=input_tokens,
            output_tokens_est=output_tokens_est,
            client_region=client_region,
            ts_ms=int(time.time() * 1000) if ts_ms is None else ts_ms,
            **overrides,
        )

    @staticmethod
    def encode(req: Request) -> bytes:
        """The wire bytes of ``req``; ``ValueError`` if the router would reject them."""
        raw = encode(request_record(req))
        checked = parse_request(raw)
        if isinstance(checked, Rejected):
            raise ValueError(f"invalid request ({checked.reason}): {checked.message}")
        return raw

    async def submit(self, req: Request) -> str:
        """Publish one request and wait for the broker's acknowledgement; returns its id."""
        fut = await self.submit_nowait(req)
        await fut
        return req.request_id

    async def submit_nowait(self, req: Request) -> asyncio.Future[Any]:
        """Queue one request in the producer's batch; await the returned future for the ack."""
        if not self._started:
            raise RuntimeError("GarClient is not started (use `async with` or await start())")
        # The record timestamp stays the send time: event time is ``ts_ms`` in the payload, and
        # old event times (replays) as record timestamps would fall under time-based retention.
        fut: asyncio.Future[Any] = await self._producer.send(
            self.topic, self.encode(req), key=req.tenant.encode()
        )
        return fut

    async def submit_many(self, requests: Iterable[Request]) -> list[str]:
        """Publish many requests with producer batching; returns their ids once all are acked."""
        futures = []
        ids = []
        for req in requests:
            futures.append(await self.submit_nowait(req))
            ids.append(req.request_id)
        await asyncio.gather(*futures)
        return ids

    async def flush(self) -> None:
        await self._producer.flush()
