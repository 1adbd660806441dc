"""Kafka SASL/SCRAM + TLS from ``KafkaSettings`` reach every client the project builds (static:
every aiokafka client under ``streams/`` takes ``**client_kwargs(...)`` and every ``faust.App``
gets ``broker_credentials``), the credentials carry them, and no repr shows a secret. The end
to end half against a SASL_SSL broker is ``tests/faults/test_security_kafka.py``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from faust.auth import SASLCredentials
from support.paths import REPO_ROOT
from support.secure_broker import INFLUX_TOKEN, KAFKA_PASSWORD, SECRETS, make_tls

from streams.config import KafkaSettings, Settings
from streams.kafka.clients import client_kwargs

AIOKAFKA_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
# Dev tooling that only ever probes the embedded PLAINTEXT dev broker or cluster it started.
NOT_USER_FACING = {"streams/devenv/health.py", "streams/devenv/cluster.py"}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (n for n in ast.walk(tree) if isinstance(n, ast.Call))


def _name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def test_every_kafka_client_in_the_code_takes_the_security_settings() -> None:
    missing, seen = [], 0
    for path in sorted((REPO_ROOT / "streams").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        for call in _calls(ast.parse(path.read_text())):
            name = _name(call)
            if name in AIOKAFKA_CLIENTS and rel not in NOT_USER_FACING:
                seen += 1
                spread = [k.value for k in call.keywords if k.arg is None]
                if not any(isinstance(v, ast.Call) and _name(v) == "client_kwargs" for v in spread):
                    missing.append(f"{rel}:{call.lineno} {name}")
            if (
                name == "App"
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "faust"
            ):
                seen += 1
                if not any(k.arg == "broker_credentials" for k in call.keywords):
                    missing.append(f"{rel}:{call.lineno} faust.App without broker_credentials")
    assert seen >= 8
    assert not missing, missing


def test_client_kwargs_carry_scram_and_tls(tmp_path: Path) -> None:
    from streams.kafka.credentials import faust_credentials

    tls = make_tls(tmp_path / "tls")
    kafka = KafkaSettings(
        bootstrap_servers="h:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password=KAFKA_PASSWORD,  # type: ignore[arg-type]
        ssl_cafile=tls.ca_pem,
    )
    kw = client_kwargs(kafka)
    assert (kw["security_protocol"], kw["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("u", KAFKA_PASSWORD)
    assert kw["ssl_context"].get_ca_certs()  # the configured CA is loaded
    creds = faust_credentials(kafka)
    assert isinstance(creds, SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (creds.username, creds.password) == ("u", KAFKA_PASSWORD)
    assert creds.ssl_context is not None and creds.ssl_context.get_ca_certs()
    assert faust_credentials(KafkaSettings()) is None
    tls_only = faust_credentials(KafkaSettings(security_protocol="SSL", ssl_cafile=tls.ca_pem))
    assert tls_only is not None and tls_only.protocol.value == "SSL"
    # Reprs of everything that holds the secret.
    settings = Settings(kafka=kafka, influx={"token": INFLUX_TOKEN})  # type: ignore[arg-type]
    for text in (
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        repr(creds),
        settings.model_dump_json(),
    ):
        assert not any(s in text for s in SECRETS), text[:300]
