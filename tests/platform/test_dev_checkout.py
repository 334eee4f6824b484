"""A checkout that dev.py set up runs the README's commands as printed; production still refuses.

dev.py writes ``var/dev.env`` (DEBUG on); the settings read it where the environment says nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studyplatform.env import ConfigError, apply_env_file, read_env_file

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A user's shell: no DEBUG, no SECRET_KEY, no database URL (SQLite under var/).
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def dev_checkout() -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        import dev
    finally:
        sys.path.remove(str(ROOT))
    dev._mark_development_checkout()  # what `python3 dev.py demo|test` does first
    assert dev.DEV_ENV.exists()
    return Path(dev.DEV_ENV)


def test_a_printed_command_runs_in_a_checkout_dev_py_set_up(dev_checkout):
    result = _manage("randomize", "--help", env={})
    assert result.returncode == 0, result.stderr
    assert "SECRET_KEY" not in result.stderr
    assert _manage("check", env={}).returncode == 0


def test_the_environment_still_makes_a_checkout_production(dev_checkout):
    result = _manage("check", env={"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_the_file_sets_only_what_the_environment_leaves_unset(tmp_path):
    path = tmp_path / "dev.env"
    path.write_text("# a comment\n\nDEBUG=true\n")
    environ = {"DEBUG": "false"}
    apply_env_file(path, environ)
    assert environ == {"DEBUG": "false"}
    environ = {}
    apply_env_file(path, environ)
    assert environ == {"DEBUG": "true"}
    assert read_env_file(tmp_path / "absent.env") == {}


@pytest.mark.parametrize("line", ["SECRET_KEY=abc", "DEBUG", "ALLOWED_HOSTS=*"])
def test_the_file_is_no_second_place_for_production_settings(tmp_path, line):
    path = tmp_path / "dev.env"
    path.write_text(f"DEBUG=true\n{line}\n")
    with pytest.raises(ConfigError, match=r"dev\.env, line 2: expected one of DEBUG=value"):
        read_env_file(path)
