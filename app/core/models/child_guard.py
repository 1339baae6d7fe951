"""For Lineproof's own child processes (the benchmark, the import's runtime probe)."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(poll_s: float = 0.5) -> None:
    """Exit as soon as the process that started this one is gone (even killed with SIGKILL): work nobody waits
    for must not keep a core busy or hold gigabytes."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
