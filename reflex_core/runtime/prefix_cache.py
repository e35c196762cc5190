"""An exact-match cache of prefix (VLM) outputs.

The key is a SHA-256 over the exact inputs the prefix graph declares (image pixels after
preprocessing, image masks, tokens, token masks, and the state when the prefix takes it), with
dtype and shape, so a cached prefix is only ever reused for a bit-identical observation: a state
binned into the prompt is in the tokens, and a state only the denoising step takes does not
enter the prefix at all. Bounded LRU, thread-safe, with hit/miss/eviction counters.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np


def prefix_key(feeds: Mapping[str, np.ndarray]) -> str:
    """Hex digest of the named arrays (name, dtype, shape and bytes of each, in name order)."""
    h = hashlib.sha256()
    for name in sorted(feeds):
        arr = np.ascontiguousarray(feeds[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(repr(arr.shape).encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


class PrefixCache:
    """LRU of prefix outputs keyed by :func:`prefix_key`.

    Values are stored as given (numpy arrays are made read-only so no caller can change a cached
    entry in place).
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("a prefix cache needs at least one entry; use None for no cache")
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        for v in value.values() if isinstance(value, Mapping) else ():
            if isinstance(v, np.ndarray):
                v.flags.writeable = False
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "max_entries": self.max_entries,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
            }
