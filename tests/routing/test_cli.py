"""`tac-gateway model target add|remove|list`, run as an operator would: real processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import cli, run_cli, sqlite_env


def test_targets_from_the_cli(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    run_cli(
        ["model", "add", "general", "--tier", "public", "--upstream", "http://vllm-a:8000/v1"],
        env,
        tmp_path,
    )
    added = json.loads(
        run_cli(
            [
                *("model", "target", "add", "general", "--url", "https://api.example.com/v1"),
                *("--name", "hosted", "--weight", "0", "--credential", "env:HOSTED_KEY"),
                *("--upstream-model", "gpt-x", "--header", "OpenAI-Organization=org-1", "--json"),
            ],
            env,
            tmp_path,
        )
    )
    assert {k: added[k] for k in ("model", "name", "weight", "credential", "headers")} == {
        "model": "general",
        "name": "hosted",
        "weight": 0,
        "credential": "env:HOSTED_KEY",
        "headers": {"openai-organization": "org-1"},
    }
    listed = json.loads(run_cli(["model", "target", "list", "general", "--json"], env, tmp_path))
    assert [(t["name"], t["url"], t["weight"]) for t in listed] == [
        ("vllm-a:8000", "http://vllm-a:8000/v1", 1),
        ("hosted", "https://api.example.com/v1", 0),
    ]
    models = json.loads(run_cli(["model", "list", "--json"], env, tmp_path))
    assert models[0]["targets"] == ["vllm-a:8000=1", "hosted=0"]
    # For people: one row per target, header names but not their values.
    table = run_cli(["model", "target", "list"], env, tmp_path)
    assert "env:HOSTED_KEY" in table and "openai-organization" in table and "org-1" not in table
    # Changing only the tier keeps the targets; --upstream replaces them.
    run_cli(["model", "add", "general", "--tier", "verified"], env, tmp_path)
    assert len(json.loads(run_cli(["model", "target", "list", "--json"], env, tmp_path))) == 2
    removed = run_cli(["model", "target", "remove", "general", "hosted", "--json"], env, tmp_path)
    assert json.loads(removed) == {"model": "general", "removed": "hosted"}
    run_cli(
        ["model", "add", "general", "--tier", "public", "--upstream", "http://vllm-b:8000/v1"],
        env,
        tmp_path,
    )
    listed = json.loads(run_cli(["model", "target", "list", "--json"], env, tmp_path))
    assert [t["name"] for t in listed] == ["vllm-b:8000"]


def test_bad_targets_are_one_line_errors(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "TACGW_UPSTREAM__ALLOWED_HOSTS": '["vllm-a"]'}
    run_cli(["migrate"], env, tmp_path)
    run_cli(["model", "add", "general", "--tier", "public"], env, tmp_path)
    cases = {
        ("--url", "ftp://vllm-a/v1"): "must be an http(s) URL",
        ("--url", "http://user:pw@vllm-a/v1"): "must not carry credentials",
        ("--url", "http://vllm-b:8000/v1"): "not in upstream.allowed_hosts",
        ("--url", "http://vllm-a/v1", "--credential", "sk-live-abc"): "never the key",
        ("--url", "http://vllm-a/v1", "--weight", "-1"): "weight must be between",
        ("--url", "http://vllm-a/v1", "--header", "Authorization=Bearer x"): "set by the gateway",
        ("--url", "http://vllm-a/v1", "--header", "novalue"): "NAME=VALUE",
    }
    for args, message in cases.items():
        result = cli(["model", "target", "add", "general", *args], env, tmp_path)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert "sk-live-abc" not in result.stderr
    result = cli(["model", "target", "add", "nomodel", "--url", "http://vllm-a/v1"], env, tmp_path)
    assert result.stderr.strip() == "error: no model named 'nomodel'"
    result = cli(["model", "target", "remove", "general", "ghost"], env, tmp_path)
    assert result.stderr.strip() == "error: model 'general' has no target named 'ghost'"
    assert json.loads(run_cli(["model", "target", "list", "--json"], env, tmp_path)) == []
