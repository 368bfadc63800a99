"""Typed environment readers and the production profile's refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from croplayer_site.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list, env_secret
from tests.conftest import ROOT


def test_readers(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BOOL", "yes")
    assert env_bool("X_BOOL", False) is True
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_BOOL must be a boolean"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "12x")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_INT must be an integer"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    secret = tmp_path / "s"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_secret("X_SECRET") == "s3cret"


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**base, **env},
        timeout=120,
    )


def test_production_needs_a_secret_key():
    r = _check({"CROPLAYER_PROFILE": "production"})
    assert r.returncode != 0 and "SECRET_KEY" in r.stderr


def test_database_url_must_be_postgres():
    r = _check({"DATABASE_URL": "mysql://u@h/db"})
    assert r.returncode != 0 and "postgres" in r.stderr
