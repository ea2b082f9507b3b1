"""What a `docker build` of the Dockerfile would see and do, for a machine without Docker.

No container engine runs here, so the image is checked in two halves: its Dockerfile is
parsed (dockerfile-parse) for the properties we promise, and its runtime is reproduced —
the build context that `.dockerignore` admits, a regular (not editable) install of it,
the image's ENV with its paths mapped into a temp dir, and a read-only root filesystem
(a private mount namespace) with only the declared volume and /tmp writable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.support.services import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax, the part we use: `*`, `?`, `**/` and a trailing `/`."""
    out, i = "", 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def context_files(candidates: Iterable[str]) -> list[str]:
    """The paths (relative, `/`-separated) that `.dockerignore` lets into the build context.

    As Docker does: the last pattern that matches a path or one of its parent directories
    decides; a `!` pattern re-admits.
    """
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!"))))
    admitted = []
    for path in candidates:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negated, regex in rules:
            if any(regex.match(p) for p in prefixes):
                excluded = not negated
        if not excluded:
            admitted.append(path)
    return admitted


def repository_files() -> list[str]:
    """Every file of the checkout as git sees it (tracked and new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    return [p for p in out.split("\0") if p and (REPO_ROOT / p).is_file()]


def build_context(dest: Path) -> Path:
    for rel in context_files(repository_files()):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    return dest


def read_only_root(writable: list[Path], command: list[str], *, user: str) -> list[str]:
    """`command` as `user` ("uid:gid") in a private mount namespace whose root is read-only
    except `writable`."""
    # Bind each writable directory onto itself first: a separate mount keeps its own rw flag
    # when the root mount is then remounted read-only. Nothing leaves the namespace.
    script = 'for d in "$@"; do [ "$d" = -- ] && break; mount --bind "$d" "$d"; done; '
    script += 'mount -o remount,bind,ro /; while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    else:
        # The mounts need root; the command itself runs as the image's USER.
        uid, gid = user.split(":")
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]
    return [*unshare, "sh", "-c", script, "sh", *map(str, writable), "--", *command]
