"""Kafka SASL/TLS settings for the Faust app.

aiokafka clients get them from ``streams.kafka.clients.client_kwargs``; Faust takes them as
``broker_credentials`` instead (its own aiokafka producer, consumer and admin client). Both are
derived from the same ``client_kwargs`` so the two can never disagree.
"""

from __future__ import annotations

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from streams.config import KafkaSettings
from streams.kafka.clients import client_kwargs


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``; None for PLAINTEXT."""
    kw = client_kwargs(kafka)
    protocol = kw["security_protocol"]
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        # SASLCredentials switches itself to SASL_SSL when given an SSL context.
        return SASLCredentials(
            username=kw.get("sasl_plain_username"),
            password=kw.get("sasl_plain_password"),
            ssl_context=kw.get("ssl_context"),
            mechanism=kw.get("sasl_mechanism", "PLAIN"),
        )
    if protocol == "SSL":
        return SSLCredentials(kw["ssl_context"])
    return None
