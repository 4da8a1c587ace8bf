import platform

import pytest

from genssl.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_glibc_thresholds_are_raised():
    assert keep_freed_memory() is True
