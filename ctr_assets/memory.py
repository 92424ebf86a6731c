"""Handing freed memory back to the operating system between the steps of a retrain.

A retrain frees large buffers as it goes (Arrow batches once the frame is built, the blocks
of rows copied for XGBoost once its matrix holds them), but the allocators keep freed pages
for reuse: the process's resident set stays at its high-water mark and the next step's
allocations land on top of it. Asking them to let go at those points keeps the peak near
what is live. Dask's workers trim the same way (`malloc_trim`).
"""

from __future__ import annotations

import ctypes
from functools import cache


def release_free_memory() -> None:
    """Returns the pages freed so far to the OS: Arrow's pool, then glibc's heap (a no-op
    where there is no glibc, e.g. macOS or musl)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # glibc's soname on Linux
    except (OSError, AttributeError):
        return None
