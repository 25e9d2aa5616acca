"""A registry request described once, as a plain value: what to send and what to parse the answer into. No I/O.

A :class:`RequestSpec` is one request (method, path, query, body, headers, the parser of its answer); a
:class:`ListSpec` is a paged listing (a page-spec builder, the item key, the paging limits, and what to make of the
items). The vendor hooks build them (one builder function per operation, validating every argument before anything
is sent); :class:`~airflow_provider_modelreg.hooks.base.ModelRegistryHookBase` runs them with exactly one sync and
one async executor, and pages with one sync and one async driver over :class:`~airflow_provider_modelreg.paging.
PagePlan`. A spec that needs the connection (Fabric's default workspace) is given as a function of it
(:data:`Deferred`); the executors look the connection up (sync or async) and call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import httpx
from airflow.providers.common.compat.sdk import Connection
from pydantic import BaseModel

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport


__all__ = [
    "Deferred",
    "ListSpec",
    "PageAnswer",
    "RequestSpec",
    "known_options",
    "parsed_as",
    "request_id",
]

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

#: A parser: the transport that answered (its vendor names errors) and the 2xx response.
Parser: TypeAlias = "Callable[[RegistryTransport, httpx.Response], T]"
#: One page of a listing as the paging plan takes it: its items and the total the server reported.
PageAnswer: TypeAlias = tuple[Sequence[T], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestSpec(Generic[T]):
    """One registry request.

    :param operation: the API operation (``GetModelVersion``); PAI sends it as ``x-acs-action``.
    :param method: HTTP method.
    :param path: percent-encoded path; for Huawei, with its canonical query already appended.
    :param parse: turns the 2xx answer into the result.
    :param query: query pairs, form-encoded by the transport as the Alibaba SDK does (empty: none).
    :param body: the request body.
    :param headers: extra headers.
    :param idempotent: retry allowed (None: only a GET).
    """

    operation: str
    method: str
    path: str
    parse: Parser[T]
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    idempotent: bool | None = None


#: A request whose shape depends on the connection (a default from its extras), built once it is looked up.
Deferred: TypeAlias = Callable[[Connection], RequestSpec[T]]


@dataclasses.dataclass(frozen=True, slots=True)
class ListSpec(Generic[T, R]):
    """A paged listing, run by :class:`~airflow_provider_modelreg.paging.PagePlan`.

    :param page: the request of a 0-based page index; its parser returns ``(items, total reported)``.
    :param key: an item's identity (items are merged on it).
    :param finish: the result from every item (in page order) and the total of the furthest page read.
    :param page_size: items per page asked for.
    :param max_results: stop once this many items are collected (None: read every page).
    :param concurrency: pages in flight at once after the first.
    :param total_field: the total's name in answers (for errors).
    :param page_field: the page parameter's name (for errors).
    """

    page: Callable[[int], RequestSpec[PageAnswer[T]] | Deferred[PageAnswer[T]]]
    key: Callable[[T], Hashable]
    finish: Callable[[list[T], int], R]
    page_size: int
    max_results: int | None = None
    concurrency: int = 8
    total_field: str = "TotalCount"
    page_field: str = "PageNumber"


def parsed_as(model: type[M]) -> Parser[M]:
    """A parser validating the body into ``model``."""

    def parse(transport: RegistryTransport, response: httpx.Response) -> M:
        return transport.parse(response, model)

    return parse


def request_id(transport: RegistryTransport, response: httpx.Response) -> str | None:
    """A parser returning the vendor request id of the answer (an update's result)."""
    return transport.request_id(response)


def known_options(options: Mapping[str, Any], kind: Any, operation: str) -> None:
    """Refuse an option that ``kind`` (a ``TypedDict`` of an operation's keyword options) does not name, as Python
    refuses an unknown keyword argument: a misspelt filter must not list everything.

    :param options: the keyword options given.
    :param kind: the ``TypedDict`` class that names them.
    :param operation: the method named in the error.
    """
    unknown = sorted(set(options) - kind.__required_keys__ - kind.__optional_keys__)
    if unknown:
        raise TypeError(f"{operation}() got an unexpected keyword argument {unknown[0]!r}")
