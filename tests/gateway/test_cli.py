"""The qcos command: users and the schema."""

from __future__ import annotations

import re

from click.testing import CliRunner

from gateway.cli import main


def _invoke(args, tmp_path, database_url):
    env = {"QCOS_STATE_DIR": str(tmp_path / "state"), "QCOS_DATABASE_URL": database_url}
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_users_create_prints_a_working_key_once(tmp_path, database_url, app):
    result = _invoke(["users", "create", "--email", "ada@example.org", "--tier", "enterprise"], tmp_path,
                     database_url)
    assert result.exit_code == 0
    key = re.search(r"api_key: (qcos_\S+)", result.output).group(1)
    response = app.test_client().get("/status/none", headers={"X-API-Key": key})
    assert response.get_json()["error_code"] == "JOB_NOT_FOUND"


def test_users_create_refuses_unknown_tier_and_duplicate_email(tmp_path, database_url):
    assert _invoke(["users", "create", "--email", "a@b.c", "--tier", "platinum"], tmp_path, database_url).exit_code == 1
    assert _invoke(["users", "create", "--email", "a@b.c"], tmp_path, database_url).exit_code == 0
    duplicate = _invoke(["users", "create", "--email", "a@b.c"], tmp_path, database_url)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output


def test_ensure_demo_creates_one_user_only_once(tmp_path, database_url):
    first = _invoke(["users", "ensure-demo"], tmp_path, database_url)
    assert "QCOS_API_KEY=qcos_" in first.output
    second = _invoke(["users", "ensure-demo"], tmp_path, database_url)
    assert "qcos_" not in second.output
