"""Stored JSON documents, compressed with Zstandard.

A stored triage keeps its Bundle exactly as sent (23–64 KB of JSON for the
shared examples), the validated request, the engine's answer and the
Provenance; every request adds an AuditEvent. Written as they are, the Bundle
alone spread over 16 overflow pages of each assessment, and SQLite's WAL and
checkpoint wrote each page twice. Zstandard at level 1 shrinks these documents
about eightfold in ~80 µs (and restores them in ~30 µs), byte for byte. With
1 KB pages (``SQLITE_PAGE_SIZE``) a stored triage of the seed skater, one per
commit, writes 112 KB instead of 477 KB and costs the writer 0.5 ms of CPU
instead of 0.9 ms.

:class:`CompressedDocument` is the column type: SQLAlchemy compresses on
write and restores on read, on SQLite and PostgreSQL alike; the group commit,
which writes with plain ``sqlite3``, calls :func:`pack` on the same columns.
Rows written before compression (plain JSON, which never starts with the
Zstandard frame's magic number) are read as they are, so no migration
rewrites old data.

Compressors and decompressors are reused from a pool: making one costs
~10 µs (its context is allocated on first use), which was more than
compressing an AuditEvent (~2 µs) and a quarter of compressing a Bundle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import zstandard
from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

#: The first four bytes of every Zstandard frame (RFC 8878 §3.1.1).
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Level 1: the fastest standard level; higher levels cost 2–8× the CPU for a few
#: percent fewer bytes on these documents.
LEVEL = 1


_Codec = TypeVar("_Codec", zstandard.ZstdCompressor, zstandard.ZstdDecompressor)


class _Pool(deque[_Codec]):
    """Idle (de)compressors, each lent to one caller at a time.

    A (de)compressor must not be used by two threads at once (request greenlets,
    the group commit's writer thread); ``deque.pop`` and ``append`` are atomic, so
    a borrowed one is nobody else's until it is returned. The pool holds at most
    as many as were ever in use at once (a compression never yields to another
    greenlet, so that is about one per thread).
    """

    def __init__(self, make: Callable[[], _Codec]) -> None:
        super().__init__()
        self._make = make

    def borrow(self) -> _Codec:
        try:
            return self.pop()
        except IndexError:
            return self._make()


_COMPRESSORS = _Pool(lambda: zstandard.ZstdCompressor(level=LEVEL))
_DECOMPRESSORS = _Pool(zstandard.ZstdDecompressor)


def pack(document: bytes) -> bytes:
    """``document`` as one Zstandard frame (with its size, so unpacking needs no guess)."""
    compressor = _COMPRESSORS.borrow()
    try:
        return compressor.compress(document)
    finally:
        _COMPRESSORS.append(compressor)


def unpack(stored: bytes) -> bytes:
    """The document as it was given to :func:`pack`; a row stored uncompressed as it is."""
    if stored[:4] != ZSTD_MAGIC:
        return stored
    decompressor = _DECOMPRESSORS.borrow()
    try:
        return decompressor.decompress(stored)
    finally:
        _DECOMPRESSORS.append(decompressor)


class CompressedDocument(TypeDecorator[bytes]):
    """A JSON document (bytes) stored as a Zstandard frame in a binary column."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, _dialect: Any) -> bytes | None:
        return None if value is None else pack(bytes(value))

    def process_result_value(self, value: bytes | None, _dialect: Any) -> bytes | None:
        return None if value is None else unpack(bytes(value))
