"""A PRIVATE Kafka broker with a SASL_SSL listener (SCRAM-SHA-256 over TLS with a throwaway CA),
next to the usual PLAINTEXT listener that the devenv health check uses."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.devenv import KafkaBroker
from streams.devenv.ports import free_port
from streams.devenv.process import DevProcessError

SCRAM_USER = "gar-svc"

KAFKA_PASSWORD = "kpw-SENTINEL-6b1f0c9e"
WRONG_PASSWORD = "kpw-WRONG-SENTINEL-3d2a"
INFLUX_TOKEN = "itok-SENTINEL-94e2aa17"
SECRETS = (KAFKA_PASSWORD, WRONG_PASSWORD, INFLUX_TOKEN)
"""Sentinel secrets: a test fails if any of them shows up in a log, error, repr or record."""


@dataclass(frozen=True)
class Tls:
    ca_pem: Path
    keystore_pem: Path  # server key + certificate, what Kafka's PEM keystore reads


def make_tls(directory: Path, host: str = "127.0.0.1") -> Tls:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text(f"subjectAltName=IP:{host}\n")
    steps = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_pem),
            "-days",
            "2",
            "-subj",
            "/CN=gar-test-ca",
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={host}",
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_pem),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(crt),
            "-days",
            "2",
            "-extfile",
            str(ext),
        ],
    ]
    for cmd in steps:
        subprocess.run(cmd, check=True, capture_output=True)
    keystore = directory / "keystore.pem"
    keystore.write_text(key.read_text() + crt.read_text())
    return Tls(ca_pem, keystore)


class SecureBroker(KafkaBroker):
    """``bootstrap_servers`` stays the PLAINTEXT listener; ``secure_bootstrap`` is SASL_SSL."""

    def __init__(self, dev: object, tls: Tls, password: str) -> None:
        super().__init__(dev)  # type: ignore[arg-type]
        self.tls = tls
        self.password = password
        self.secure_port = free_port(self.dev.host)

    @property
    def secure_bootstrap(self) -> str:
        return f"{self.dev.host}:{self.secure_port}"

    def _write_config(self) -> None:
        super()._write_config()
        h, d = self.dev.host, self.dev
        props = self.config_file.read_text().splitlines()
        override = {
            "listeners": f"PLAINTEXT://{h}:{d.kafka_port},SASL_SSL://{h}:{self.secure_port},"
            f"CONTROLLER://{h}:{d.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{d.kafka_port},"
            f"SASL_SSL://{h}:{self.secure_port}",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.keystore_pem),
        }
        kept = [p for p in props if p.split("=", 1)[0] not in override]
        self.config_file.write_text(
            "\n".join(kept + [f"{k}={v}" for k, v in override.items()]) + "\n"
        )

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            "Z2FyLXNlY3VyZS10ZXN0MA",
            "-c",
            str(self.config_file),
            "--add-scram",
            f"SCRAM-SHA-256=[name={SCRAM_USER},password={self.password}]",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevProcessError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")
