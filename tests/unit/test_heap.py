"""`release_free_memory` gives free heap pages back on glibc and is harmless elsewhere."""

from __future__ import annotations

import platform
import sys

from modbus_mqtt_bridge import heap


def test_release_free_memory_runs_and_finds_malloc_trim_on_glibc_linux() -> None:
    garbage = [bytes(2000) for _ in range(10_000)]
    del garbage
    heap.release_free_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert heap._malloc_trim() is not None
