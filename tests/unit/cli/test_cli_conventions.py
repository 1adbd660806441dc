"""The command line as a user meets it: global options anywhere, one error line with exit 2,
warnings for misspelled variables, real metavars and examples in every command's help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.cli import take_global_options
from streams.cli.help import EXAMPLES

GAR = str(Path(sys.executable).with_name("gar"))


def gar(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """``gar`` through its installed entry point, with the test's environment (+ ``env``)."""
    full = {k: v for k, v in os.environ.items() if k != "GAR_DEBUG"}
    full.update(env or {})
    return subprocess.run(
        [GAR, *args], env=full, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_global_options_are_taken_from_anywhere_on_the_line() -> None:
    rest, env, debug = take_global_options(
        ["audit", "-b", "k1:9092", "--since", "6h", "--prefix=demo.1", "--debug"]
    )
    assert rest == ["audit", "--since", "6h"]
    assert env == {"GAR_KAFKA__BOOTSTRAP_SERVERS": "k1:9092", "GAR_TOPICS__PREFIX": "demo.1"}
    assert debug
    rest, env, _ = take_global_options(["--bootstrap-server", "k2:9092", "topics", "list"])
    assert (rest, env) == (["topics", "list"], {"GAR_KAFKA__BOOTSTRAP_SERVERS": "k2:9092"})


def test_topics_keeps_its_own_prefix_filter() -> None:
    rest, env, _ = take_global_options(["topics", "delete", "--prefix", "demo.", "-y"])
    assert rest == ["topics", "delete", "--prefix", "demo.", "-y"]
    assert env == {}


def test_unreachable_broker_is_one_error_line_naming_it() -> None:
    run = gar("-b", "127.0.0.1:1", "topics", "list")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: cannot reach the Kafka broker at 127.0.0.1:1 (start it with `gar dev up`, "
        "or point -b/--bootstrap-server or GAR_KAFKA__BOOTSTRAP_SERVERS at a running broker)"
    )
    assert "Traceback" not in run.stderr + run.stdout


def test_debug_shows_the_traceback() -> None:
    run = gar("--debug", "-b", "127.0.0.1:1", "topics", "list")
    assert run.returncode == 2
    assert "Traceback (most recent call last)" in run.stderr
    assert run.stderr.rstrip().splitlines()[-1].startswith("error: cannot reach the Kafka broker")


def test_a_bad_setting_names_the_variable() -> None:
    run = gar("topics", "list", env={"GAR_KAFKA__SECURITY_PROTOCOL": "TLS"})
    assert run.returncode == 2
    assert run.stderr.startswith("error: bad setting GAR_KAFKA__SECURITY_PROTOCOL=TLS: ")
    assert "SASL_SSL" in run.stderr and "Traceback" not in run.stderr


def test_a_misspelled_variable_is_warned_with_the_closest_name() -> None:
    run = gar("--version", env={"GAR_KAFKA__BOOTSTRAP_SERVER": "x:1"})
    assert run.returncode == 0
    assert run.stdout.startswith("gar-streams ")
    assert (
        "warning: GAR_KAFKA__BOOTSTRAP_SERVER is not a gar setting and is ignored "
        "(did you mean GAR_KAFKA__BOOTSTRAP_SERVERS?)"
    ) in run.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ("produce", "--dataset", "nope", "-n", "5"),
            {},
            "error: unknown dataset nope (choose from",
        ),
        (("worker",), {"GAR_WORKER__POLICY": "nope"}, "error: unknown policy 'nope'; known:"),
        (
            ("carbon-feed", "--zones", "XX", "--hours", "1"),
            {},
            "error: no intensity data for zone XX",
        ),
        (("demo", "-n", "5"), {"GAR_DATA__DIR": "/nonexistent"}, "error: /nonexistent: not a gar"),
    ],
)
def test_input_and_config_errors_are_one_line(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    run = gar(*args, env={"GAR_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", **env})
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(expected), run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def _commands() -> list[str]:
    import typer

    from streams.cli import _register, app
    from streams.cli.help import polish

    _register()
    root = typer.main.get_command(app)
    polish(root)
    out: list[str] = []

    def walk(cmd: Any, path: str) -> None:
        subs = getattr(cmd, "commands", {})
        if path and (not subs or path in EXAMPLES):
            out.append(path)
        for name, sub in subs.items():
            if not getattr(sub, "hidden", False):
                walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return out


def test_every_command_has_examples_and_real_metavars() -> None:
    commands = _commands()
    assert {"policy show", "policy set", "tenants show", "topics delete", "demo"} <= set(commands)
    for path in commands:
        run = gar(*path.split(), "--help")
        assert run.returncode == 0, (path, run.stderr)
        assert "Examples:" in run.stdout, path
        assert f"gar {path.split()[0]}" in run.stdout, path
        for type_name in ("<bool>", "<str>", "<int>", "<path>", "<float>", "<list"):
            assert type_name not in run.stdout, (path, type_name)


def test_version() -> None:
    from streams import __version__

    run = gar("--version")
    assert (run.returncode, run.stdout.strip()) == (0, f"gar-streams {__version__}")
