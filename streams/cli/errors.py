"""One error path for every command: ``error: <what went wrong> (<what to do>)``, exit 2.

Commands raise ``CliError`` for problems they detect, and ``explain`` turns the exceptions the
libraries raise for infrastructure and configuration problems (broker unreachable, a bad
``GAR_*`` value, a missing data file, an unknown policy) into one. ``--debug`` (or
``GAR_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

# typer ships its own copy of click; its ClickException is what a command's runner prints
# (show) and exits with (exit_code), in ``gar`` and in typer's test runner alike.
from typer._click.exceptions import ClickException

EXIT_ERROR = 2


class CliError(ClickException):
    exit_code = EXIT_ERROR

    def __init__(self, what: str, hint: str = "") -> None:
        self.what, self.hint = what, hint
        super().__init__(f"{what} ({hint})" if hint else what)

    def __str__(self) -> str:
        return self.message

    def show(self, file: IO[Any] | None = None) -> None:
        print(f"error: {self.message}", file=file or sys.stderr)


def _broker() -> str:
    return os.environ.get("GAR_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")


def _influx() -> str:
    return os.environ.get("GAR_INFLUX__URL", "http://127.0.0.1:18086")


_BROKER_HINT = (
    "start it with `gar dev up`, or point -b/--bootstrap-server or "
    "GAR_KAFKA__BOOTSTRAP_SERVERS at a running broker"
)


def explain(exc: BaseException) -> CliError | None:
    """The ``CliError`` for a known exception, or None (a bug: the traceback is kept)."""
    if isinstance(exc, CliError):
        return exc
    name = type(exc).__name__
    module = type(exc).__module__
    from streams.config import SettingsError

    if isinstance(exc, SettingsError):
        return CliError(f"bad setting {exc}", "fix or unset the variable; see the README's table")
    if module.startswith("aiokafka") or name in ("NoBrokersAvailable",):
        if name in ("KafkaConnectionError", "NoBrokersAvailable", "KafkaTimeoutError"):
            return CliError(f"cannot reach the Kafka broker at {_broker()}", _BROKER_HINT)
        if name == "UnknownTopicOrPartitionError":
            return CliError(
                f"a topic does not exist on {_broker()}",
                "create them with `gar topics create` (same --prefix)",
            )
        return CliError(f"Kafka error from {_broker()}: {name}: {exc}", "see --debug")
    if isinstance(exc, TimeoutError) and "kafka" in repr(exc.__context__).lower():
        return CliError(f"cannot reach the Kafka broker at {_broker()}", _BROKER_HINT)
    from streams.data.errors import DataFileError

    if isinstance(exc, DataFileError):
        return CliError(
            str(exc), "check the file, or pass --data DIR / set GAR_DATA__DIR to the full data"
        )
    from streams.kafka.admin import TopicLayoutError

    if isinstance(exc, TopicLayoutError):
        return CliError(
            f"topic layout mismatch on {_broker()}: {exc}",
            "delete the topics (`gar topics delete --prefix ...`) or use another --prefix",
        )
    from streams.tools.kafka_io import MissingTopicsError

    if isinstance(exc, MissingTopicsError):
        return CliError(str(exc).split("; run")[0], "create them with `gar topics create`")
    from streams.devenv.process import DevProcessError

    if isinstance(exc, DevProcessError):
        return CliError(str(exc), "see the service's log named above; `gar dev status`")
    from streams.core.errors import CoreError

    if isinstance(exc, CoreError):
        return CliError(str(exc).strip("'\""), "fix the input named above")
    if isinstance(exc, LookupError) and "topic" in str(exc):
        return CliError(str(exc), "check --prefix / GAR_TOPICS__PREFIX (`gar topics list --all`)")
    if isinstance(exc, FileNotFoundError):
        return CliError(f"file not found: {exc.filename}", "check the path")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return CliError(
            f"this command needs {exc.name}, which is not installed",
            "pip install 'gar-streams[server]'",
        )
    if name == "InfluxDBError" or (isinstance(exc, ConnectionError) and "8086" in str(exc)):
        return CliError(f"metrics store error at {_influx()}: {exc}", "check GAR_INFLUX__URL")
    return None
