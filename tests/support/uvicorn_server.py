"""Serve an ASGI app with a real uvicorn in a background thread, for tests.

Owns ``serve(app, port=None)``: a context manager yielding the base URL
(``http://127.0.0.1:<port>``) while a real uvicorn server answers on it, and shutting the
server down when the block exits. Tests talk to it over real TCP, no ASGI transport.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator, Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["serve"]

STARTUP_TIMEOUT = 10.0  # seconds
SHUTDOWN_TIMEOUT = 10.0  # seconds


class _ThreadedServer(uvicorn.Server):
    """A uvicorn.Server that never touches signal handlers (they belong to the main thread)."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # uvicorn >= 0.29
        yield


@contextlib.contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Run `app` on 127.0.0.1 (`port`, or one the OS picks) and yield its base URL."""
    # Bind before starting uvicorn and hand it the socket: no race for a "free" port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", timeout_graceful_shutdown=2)
    server = _ThreadedServer(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the test below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if errors or not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {bound_port}: {errors!r}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        if thread.is_alive():  # a stuck connection: stop waiting for it
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
