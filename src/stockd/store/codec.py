"""Conversions between domain values and their stored form, shared by every SQL store."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from stockd.domain.model import Dimensions, ReservationLine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class MillisOf(dict[datetime, int]):
    """``to_millis`` of each moment, converted once: a batch's thousands of rows share a few moments."""

    def __missing__(self, moment: datetime) -> int:
        millis = self[moment] = to_millis(moment)
        return millis


def from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


_lines_encoder = msgspec.json.Encoder()
_lines_decoder = msgspec.json.Decoder(list[tuple[str, str, int]])


def encode_lines(lines: tuple[ReservationLine, ...]) -> str:
    return _lines_encoder.encode([(line.sku, line.warehouse_id, line.quantity) for line in lines]).decode()


def decode_lines(stored: str | bytes) -> tuple[ReservationLine, ...]:
    return tuple(ReservationLine(*triple) for triple in _lines_decoder.decode(stored))


def encode_dimensions(dimensions: Dimensions | None) -> str | None:
    if dimensions is None:
        return None
    return msgspec.json.encode([dimensions.length, dimensions.width, dimensions.height]).decode()


def decode_dimensions(stored: str | None) -> Dimensions | None:
    if stored is None:
        return None
    length, width, height = msgspec.json.decode(stored, type=tuple[int, int, int])
    return Dimensions(length, width, height)


def encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()
