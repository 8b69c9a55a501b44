from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from campaign import config
from campaign.__main__ import RETURN_FREED_PAGES
from campaign.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="SINCH_PROJECT_ID, SINCH_APP_ID, SINCH_KEY_ID"):
        config.load_config(env={})
    env = {
        "SINCH_PROJECT_ID": "p",
        "SINCH_APP_ID": "a",
        "SINCH_KEY_ID": "k",
        "SINCH_KEY_SECRET": "s",
    }
    loaded = config.load_config(env=env)
    assert loaded.sinch.region == "us"
    assert loaded.sinch.resolved_url(loaded.sinch.conversation_url) == (
        "https://us.conversation.api.sinch.com"
    )
    assert loaded.database.url == "sqlite:///campaign.db"
    assert loaded.sending.requests_per_second == 800


def test_commands_that_never_call_sinch_need_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = config.load_config(env={}, credentials=False)  # status, report, the receiver
    assert not loaded.sinch.sandbox and not loaded.sinch.key_secret
    with pytest.raises(ConfigError, match="SINCH_KEY_SECRET not set"):
        config.load_config(env={"SINCH_PROJECT_ID": "p", "SINCH_APP_ID": "a", "SINCH_KEY_ID": "k"})


def test_region_from_environment_fills_urls(tmp_path: Path) -> None:
    path = write(tmp_path, '[sinch]\nregion = "us"\nsandbox = true\n')
    loaded = config.load_config(path, env={"SINCH_REGION": "eu"})
    assert loaded.sinch.resolved_url(loaded.sinch.batch_url) == (
        "https://eu.conversationbatch.api.sinch.com"
    )


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[sinch]\nsandbox = true\n[database]\nurl = "sqlite:///file.db"\n')
    assert config.load_config(path, env={}).database.url == "sqlite:///file.db"
    env = {"CAMPAIGN_DATABASE_URL": "sqlite:///env.db"}
    assert config.load_config(path, env=env).database.url == "sqlite:///env.db"
    flagged = config.load_config(path, env=env, database_url="sqlite:///flag.db")
    assert flagged.database.url == "sqlite:///flag.db"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[sinch]\nsandbox = true\n[sending]\nbatch_size = 10\n")
    loaded = config.load_config(env={"CAMPAIGN_CONFIG": str(path)})
    assert loaded.sending.batch_size == 10
    with pytest.raises(ConfigError, match="config file not found"):
        config.load_config(env={"CAMPAIGN_CONFIG": str(tmp_path / "nope.toml")})


def test_sandbox_supplies_its_own_credentials(tmp_path: Path) -> None:
    loaded = config.load_config(write(tmp_path, "[sinch]\nsandbox = true\n"), env={})
    assert loaded.sinch.key_id == config.SANDBOX_KEY_ID
    assert loaded.sinch.key_secret.reveal() == config.SANDBOX_KEY_SECRET
    assert loaded.sinch.project_id == config.SANDBOX_PROJECT_ID


def test_secrets_never_print(tmp_path: Path) -> None:
    env = {
        "SINCH_PROJECT_ID": "p",
        "SINCH_APP_ID": "a",
        "SINCH_KEY_ID": "k",
        "SINCH_KEY_SECRET": "top-secret-value",
        "SINCH_WEBHOOK_SECRET": "hook-secret-value",
    }
    loaded = config.load_config(write(tmp_path, ""), env=env)
    text = repr(loaded) + str(loaded)
    assert "top-secret-value" not in text
    assert "hook-secret-value" not in text
    assert loaded.sinch.key_secret.reveal() == "top-secret-value"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sinch]\nsandbox = true\nregoin = 'us'\n", "unknown key 'regoin'"),
        ("[sinch]\nsandbox = true\nkey_secret = 'x'\n", "secrets are not read from files"),
        ("[sinch]\nsandbox = true\nregion = 'ap'\n", "region: 'ap' is not one of"),
        ("[sinch]\nsandbox = 'yes'\n", "expected true or false"),
        ("[sinch]\nsandbox = true\n[sending]\nrequests_per_second = 0\n", "must be positive"),
        ("[sinch]\nsandbox = true\n[sending]\nbatch_size = 1001\n", "between 1 and 1000"),
        ("[sinch]\nsandbox = true\n[sending]\nbatch_size = -1\n", "between 1 and 1000"),
        ("[sinch]\nsandbox = true\n[sending]\ndrain_timeout = 0\n", "drain_timeout must be"),
        ("[sinch]\nsandbox = true\n[extra]\n", "unknown table or key 'extra'"),
        ("[sinch\n", "invalid TOML"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load_config(write(tmp_path, text), env={})


def test_pointed_at_replaces_every_url() -> None:
    moved = config.SinchConfig().pointed_at("http://127.0.0.1:9/")
    assert moved.auth_url == "http://127.0.0.1:9/oauth2/token"
    assert moved.conversation_url == moved.batch_url == "http://127.0.0.1:9"


def test_the_command_has_polars_give_freed_memory_back_soon_unless_told_otherwise() -> None:
    """``campaign`` sets Polars' allocator before Polars loads (a new interpreter, as the
    command is): Polars puts its defaults first, and jemalloc takes the last value given. A
    value in the environment wins, unless it is only what Polars writes there itself (the
    command was started by a process that had imported Polars)."""
    probe = (
        "import os, sys, types, campaign.__main__ as entry;"
        "cli = types.ModuleType('campaign.cli');"
        "cli.main = lambda: (__import__('polars'), print(os.environ[entry.MALLOC_CONF]))[1] or 0;"
        "sys.modules['campaign.cli'] = cli;"
        "entry.main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert run.stdout.strip().endswith("," + RETURN_FREED_PAGES), run.stderr
    env["_RJEM_MALLOC_CONF"] = "narenas:2"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert run.stdout.strip().endswith(",narenas:2"), run.stderr
    assert RETURN_FREED_PAGES not in run.stdout
    # Started by a process that imported Polars: Polars' own defaults are nobody's choice.
    env["_RJEM_MALLOC_CONF"] = "dirty_decay_ms:500,muzzy_decay_ms:1000"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert run.stdout.strip().endswith("," + RETURN_FREED_PAGES), run.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's arenas: Linux only")
def test_the_command_keeps_glibc_to_two_arenas_unless_told_otherwise() -> None:
    """Threads that allocate share two glibc arenas (``malloc_stats`` lists them), not one
    each; MALLOC_ARENA_MAX in the environment wins."""
    probe = textwrap.dedent(
        """
        import ctypes, sys, threading, types
        import campaign.__main__ as entry

        def work():
            blocks = [bytearray(100_000) for _ in range(20)]  # from this thread's arena
            gate.wait()

        def main():
            threads = [threading.Thread(target=work) for _ in range(6)]
            for thread in threads:
                thread.start()
            gate.wait()
            for thread in threads:
                thread.join()
            ctypes.CDLL(None).malloc_stats()
            return 0

        gate = threading.Barrier(7)
        cli = types.ModuleType("campaign.cli")
        cli.main = main
        sys.modules["campaign.cli"] = cli
        entry.main()
        """
    )

    def arenas(env: dict[str, str]) -> int:
        run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stderr.count("Arena ")

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if (
        "Arena "
        not in subprocess.run(
            [sys.executable, "-c", "import ctypes; ctypes.CDLL(None).malloc_stats()"],
            capture_output=True,
            text=True,
        ).stderr
    ):
        pytest.skip("not glibc's malloc")
    assert arenas(env) == 2
    assert arenas(env | {"MALLOC_ARENA_MAX": "8"}) > 2
