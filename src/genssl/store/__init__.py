"""Image stores: a directory of a few shards plus ``manifest.json``, with O(1) random access by index.

See :mod:`genssl.store.manifest` for the on-disk format, :class:`~genssl.store.writer.StoreWriter` to write one
and :class:`~genssl.store.reader.ImageStore` to read one.
"""

from genssl.store.manifest import verify_store
from genssl.store.reader import ImageStore
from genssl.store.writer import StoreWriter

__all__ = ["ImageStore", "StoreWriter", "verify_store"]
