"""aiokafka connection arguments from the one Settings object (admin, producers, consumers)."""

from __future__ import annotations

import ssl
from typing import Any

from streams.config import KafkaSettings


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism is not None:
        kw["sasl_mechanism"] = kafka.sasl_mechanism
        kw["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            kw["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
        if kafka.ssl_certfile is not None:
            ctx.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
        kw["ssl_context"] = ctx
    return kw


def faust_broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(","))
