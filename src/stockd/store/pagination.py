"""Opaque keyset cursors for paginated lists.

A cursor is the sort key of the last item on a page, JSON-encoded and then
base64url-encoded, so clients treat it as opaque and the next page starts
strictly after that key (stable under concurrent inserts, unlike OFFSET).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from stockd.domain.errors import InvalidRequest

T = TypeVar("T")
CursorKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: Sequence[str | int]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, shape: Sequence[type]) -> CursorKey | None:
    """The key a cursor carries, checked against the types the list sorts by."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = msgspec.json.decode(raw, type=list[str | int])
    except (binascii.Error, ValueError, msgspec.DecodeError) as error:
        raise InvalidRequest("cursor is not one this service issued") from error
    if len(key) != len(shape) or not all(_fits(part, kind) for part, kind in zip(key, shape, strict=True)):
        raise InvalidRequest("cursor is not one this service issued")
    return tuple(key)


def _fits(part: str | int, kind: type) -> bool:
    """Every integer the store sorts by is a signed 64-bit column."""
    if type(part) is not kind:
        return False
    return not isinstance(part, int) or -(2**63) <= part < 2**63


def make_page(rows: list[T], limit: int, key: Callable[[T], Sequence[str | int]]) -> Page[T]:
    """Rows were fetched with ``limit + 1``: the extra one tells whether another page exists."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, encode_cursor(key(items[-1])))
