"""Bodies read and decoded (gzip, deflate) as a stream, refused beyond a cap of *decoded* data: a gzip bomb is
stopped at the cap."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from airflow_provider_modelreg.errors import RegistryResponseError, one_line
from airflow_provider_modelreg.transport.responses import Vendor, request_id_of


class _BodyTooLarge(Exception):
    pass


class _Decoder:
    """Streaming content decoding (gzip, deflate; others pass through, as httpx does) with a cap on the output."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.chunks: list[bytes] = []
        self.stages: list[Any] = []  # zlib decompress objects, outermost coding first
        self.raw_deflate: list[bool] = []
        if content_encoding:
            for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
                if coding in ("gzip", "x-gzip"):
                    self.stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
                    self.raw_deflate.append(False)
                elif coding == "deflate":
                    self.stages.append(zlib.decompressobj())
                    self.raw_deflate.append(True)  # may still fall back to a raw deflate stream
        self.started = [False] * len(self.stages)

    def _stage(self, index: int, data: bytes) -> bytes:
        decoder = self.stages[index]
        try:
            out: bytes = decoder.decompress(data, self.cap + 1)
        except zlib.error:
            if self.raw_deflate[index] and not self.started[index]:  # "deflate" sent without the zlib header
                self.stages[index] = decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                out = decoder.decompress(data, self.cap + 1)
            else:
                raise
        self.started[index] = True
        if decoder.unconsumed_tail or len(out) > self.cap:
            raise _BodyTooLarge
        return out

    def feed(self, data: bytes) -> None:
        for index in range(len(self.stages)):
            if not data:
                return
            data = self._stage(index, data)
        self._add(data)

    def _add(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            if self.size > self.cap:
                raise _BodyTooLarge
            self.chunks.append(data)

    def finish(self) -> bytes:
        for index in range(len(self.stages)):
            tail = self.stages[index].flush()
            for later in range(index + 1, len(self.stages)):
                tail = self._stage(later, tail) if tail else tail
            self._add(tail)
        return b"".join(self.chunks)


def _declared_too_large(response: httpx.Response, cap: int) -> bool:
    length = response.headers.get("content-length")
    return (
        length is not None
        and length.isdigit()
        and int(length) > cap
        and response.headers.get("content-encoding", "identity").strip().lower() == "identity"
    )


def _already_read(response: httpx.Response, cap: int) -> bool:
    """True when the body is in memory already (an in-memory test transport); refuses one over the cap, or one whose
    declared length is over it, before reading."""
    if getattr(response, "_content", None) is not None:
        if len(response.content) > cap:
            raise _BodyTooLarge
        return True
    if _declared_too_large(response, cap):
        raise _BodyTooLarge
    return False


@contextmanager
def _typed_refusals(response: httpx.Response, cap: int, vendor: Vendor) -> Iterator[None]:
    """The decoder's refusals as :class:`RegistryResponseError` naming the body."""
    problem = None
    try:
        yield
    except _BodyTooLarge:
        problem = f"larger than max_response_bytes ({cap} bytes, decoded)"
    except zlib.error as exc:
        problem = f"content-encoding could not be decoded ({one_line(exc, 100)})"
    if problem is not None:
        raise RegistryResponseError(
            field="body",
            problem=problem,
            request_id=request_id_of(vendor, response, {}),
            status_code=response.status_code,
        )


def read_body(response: httpx.Response, cap: int, vendor: Vendor) -> None:
    """Read a streamed body into ``response``, decoding and capping it as it streams in; close the stream.

    :param response: a response whose body has not been read.
    :param cap: the most decoded bytes accepted.
    :param vendor: whose request id the error names.
    :raises RegistryResponseError: over the cap, or not decodable.
    """
    try:
        with _typed_refusals(response, cap, vendor):
            if not _already_read(response, cap):
                decoder = _Decoder(response.headers.get("content-encoding"), cap)
                for chunk in response.iter_raw():
                    decoder.feed(chunk)
                response._content = decoder.finish()
    finally:
        response.close()


async def aread_body(response: httpx.Response, cap: int, vendor: Vendor) -> None:
    """:func:`read_body` for an async stream."""
    try:
        with _typed_refusals(response, cap, vendor):
            if not _already_read(response, cap):
                decoder = _Decoder(response.headers.get("content-encoding"), cap)
                chunks: AsyncIterator[bytes] = response.aiter_raw()
                async for chunk in chunks:
                    decoder.feed(chunk)
                response._content = decoder.finish()
    finally:
        await response.aclose()
