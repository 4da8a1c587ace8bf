"""Keep freed memory in the process instead of returning it to the OS (glibc only).

A training step allocates and frees the same large tensors every step. By default glibc serves blocks above
``M_MMAP_THRESHOLD`` with fresh ``mmap`` calls and returns freed memory above ``M_TRIM_THRESHOLD`` to the OS, so
every step pays page faults to touch new pages again; on small CPU machines this costs 5-15 % of the step
(``benchmarks/train_overhead.py``). Raising both thresholds, as ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` would at start-up, lets freed blocks be reused. The process then keeps its peak
memory until it exits, which suits a training process.
"""

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Allocations below 2 GiB come from the heap and freed memory stays in the process.
THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; return whether it took effect (False off glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    log.debug("glibc mallopt thresholds raised: %s", ok)
    return ok
