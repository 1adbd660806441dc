"""Settings that work outside the checkout: defaults from the environment or the user's
directories, one prefix for every topic, variables named in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import (
    PACKAGE_DIR,
    SAMPLE_DATA_DIR,
    Settings,
    SettingsError,
    load_settings,
    settings_env_names,
    unknown_env,
)


def test_defaults_do_not_depend_on_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("GAR_DEV__STATE_DIR", "GAR_DEV__CACHE_DIR", "GAR_DATA__DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = Settings()
    assert s.dev.state_dir == tmp_path / "state" / "gar-streams"
    assert s.dev.cache_dir == tmp_path / "cache" / "gar-streams"
    assert s.data.dir == SAMPLE_DATA_DIR and s.data.is_sample
    assert SAMPLE_DATA_DIR.is_relative_to(PACKAGE_DIR)
    # Faust's data directory is under the state directory, never the working directory.
    assert s.worker_data_dir() == tmp_path / "state" / "gar-streams" / "faust" / s.app_id


def test_the_old_data_variable_still_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GAR_DATA__DIR", raising=False)
    monkeypatch.setenv("GAR_DATA__SHARED_DATA_DIR", str(tmp_path))
    assert Settings().data.dir == tmp_path


@pytest.mark.parametrize(
    ("prefix", "decisions"),
    [("demo.1fae13", "demo.1fae13.decisions"), ("demo.1fae13.", "demo.1fae13.decisions"),
     ("gar-", "gar-decisions"), ("", "decisions")],
)  # fmt: skip
def test_a_prefix_without_separator_gets_a_dot(prefix: str, decisions: str) -> None:
    t = load_settings(topics={"prefix": prefix}).topics
    assert t.name(t.decisions) == decisions


def test_the_app_id_follows_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAR_APP_ID", raising=False)
    s = load_settings(topics={"prefix": "prod.eu."})
    assert s.app_id == "prod.eu.router"  # its changelogs start with the prefix too
    assert load_settings(app_id="mine", topics={"prefix": "x."}).app_id == "mine"


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAR_KAFKA__SECURITY_PROTOCOL", "TLS")
    monkeypatch.setenv("GAR_WORKER__BATCH_MAX", "many")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert "GAR_KAFKA__SECURITY_PROTOCOL=TLS" in text
    assert "GAR_WORKER__BATCH_MAX=many" in text


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAR_INFLUX__TOKEN", "")
    monkeypatch.setenv("GAR_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("GAR_KAFKA__SASL_MECHANISM", "MD5")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "hunter2" not in str(err.value)


def test_unknown_variables_get_the_closest_valid_name() -> None:
    env = {
        "GAR_KAFKA__BOOTSTRAP_SERVER": "x",
        "GAR_TOPIC__PREFIX": "x",
        "GAR_ZZZZZZZZ": "x",
        "GAR_KAFKA__BOOTSTRAP_SERVERS": "ok",
        "GAR_SKIP_BOOTSTRAP": "1",
        "GAR_FAULTS_KILL_REQUESTS": "1",
        "OTHER": "x",
    }
    assert unknown_env(env) == [
        ("GAR_KAFKA__BOOTSTRAP_SERVER", "GAR_KAFKA__BOOTSTRAP_SERVERS"),
        ("GAR_TOPIC__PREFIX", "GAR_TOPICS__PREFIX"),
        ("GAR_ZZZZZZZZ", None),
    ]
    names = settings_env_names()
    assert {"GAR_APP_ID", "GAR_DATA__DIR", "GAR_WORKER__WEB_PORT", "GAR_INFLUX__TOKEN"} <= names
