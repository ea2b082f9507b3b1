"""LiteLLM's proxy for bench/compare.py: its own venv, one worker, master key, no database.

LiteLLM is a point of comparison, never a dependency of the gateway: it lives in its own
virtualenv under ~/.cache/tacgw (`ensure_venv` makes it once with pip, pinned), not in the
project's venv nor in pyproject.toml. It serves the demo upstream as an OpenAI-compatible
model named like the gateway's (`demo-general`), so the same wrk script drives both.

Nothing is fetched at run time:
- LITELLM_LOCAL_MODEL_COST_MAP=True: the model price map is read from the package, not
  downloaded at import;
- tiktoken: LiteLLM points TIKTOKEN_CACHE_DIR at the encodings its wheel bundles
  (cl100k_base, o200k_base), so token counting works offline;
- telemetry records nothing until a destination is configured (none is); no database,
  so no Prisma client generation or schema migration;
- every HTTP proxy variable points at a closed loopback port and NO_PROXY lists loopback,
  so a library that honours them and tries to reach the internet fails at once instead
  of leaving the machine; `outbound_connections` lists any socket to a non-loopback peer
  seen while it ran (compare.py records the answer).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
from run import Procs, _free_port

START_S = 180.0  # LiteLLM imports for a long while, longer on a loaded machine

VERSION = "1.108.7"  # the release the issue measured (after the compromised 1.107.0)
VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "tacgw"
    / (f"litellm-{VERSION}")
)


def ensure_venv() -> Path:
    """The LiteLLM executable, installing `litellm[proxy]==VERSION` on first use."""
    exe = VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"installing litellm[proxy]=={VERSION} into {VENV} (one-off)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    subprocess.run(
        [
            str(VENV / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            f"litellm[proxy]=={VERSION}",
        ],
        check=True,
        timeout=1800,
    )
    return exe


def _config(upstream_url: str, master_key: str) -> str:
    # JSON is YAML: no YAML writer needed here.
    import json

    return json.dumps(
        {
            "model_list": [
                {
                    "model_name": "demo-general",
                    "litellm_params": {
                        "model": "openai/demo-general",
                        "api_base": upstream_url,
                        "api_key": "demo-upstream-key",
                    },
                }
            ],
            "general_settings": {"master_key": master_key},
            "litellm_settings": {"telemetry": False, "drop_params": True},
        }
    )


def offline_env() -> dict[str, str]:
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACGW_", "LITELLM_"))}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",  # no .env file loading
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
            "DISABLE_SCHEMA_UPDATE": "true",
            "NO_DOCS": "True",
            "HTTP_PROXY": closed,
            "HTTPS_PROXY": closed,
            "http_proxy": closed,
            "https_proxy": closed,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env.pop("DATABASE_URL", None)
    return env


def start(procs: Procs, tmp: Path, upstream_url: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the proxy; return (process, its chat completions URL, master key)."""
    exe = ensure_venv()
    key = "sk-bench-" + secrets.token_hex(16)
    cfg = tmp / "litellm.yaml"
    cfg.write_text(_config(upstream_url, key))
    port = _free_port()
    log = tmp / "litellm.log"
    proc = procs.start(
        [
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=offline_env(),
        log=log,
    )
    deadline = time.monotonic() + START_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"LiteLLM exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=2).is_success:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"LiteLLM did not answer within {START_S:.0f}s; log {log}")
        time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions", key


def outbound_connections(pids: list[int]) -> list[str]:
    """Non-loopback TCP peers of these processes right now (`ss -tnp`), expected empty."""
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, timeout=10).stdout
    seen = []
    for line in out.splitlines():
        if not any(f"pid={p}," in line for p in pids):
            continue
        peer = line.split()[4]
        if not peer.startswith(("127.", "[::1]", "[::ffff:127.")):
            seen.append(peer)
    return seen
