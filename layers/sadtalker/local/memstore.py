"""An in-memory Storage: what a render worker process sees (moto's S3 lives in the parent process).

The parent copies the objects a chunk needs into it, the worker's stage writes into it, and the parent
copies the written objects back to the bucket. Writes are recorded in order.
"""

from __future__ import annotations

from ..storage import Storage, _check_key


class MemoryStorage(Storage):
    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects: dict[str, bytes] = dict(objects or {})
        self.written: list[str] = []

    def get(self, key: str, limit: int | None = None) -> bytes:
        try:
            data = self.objects[key]
        except KeyError:
            raise KeyError(key) from None
        return data if limit is None else data[:limit]

    def put(self, key: str, data: bytes) -> None:
        self.objects[_check_key(key)] = bytes(data)
        self.written.append(key)

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def size(self, key: str) -> int:
        try:
            return len(self.objects[key])
        except KeyError:
            raise KeyError(key) from None
