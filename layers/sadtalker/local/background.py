"""A function run in a loop on a daemon thread while a block is open (the local stand-ins for AWS's
event sources: the SQS admission poller, EventBridge's status events)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def polling(step: Callable[[], None], interval_s: float, name: str, join_s: float = 60.0) -> Iterator[None]:
    """Call ``step`` every ``interval_s`` until the block ends; then stop and wait up to ``join_s``."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            step()
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=join_s)
