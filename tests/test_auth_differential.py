"""Differential tests: our ``httpx.Auth`` classes against the official SDKs' own signing functions.

Oracles (test-only dependencies):

* Alibaba: ``alibabacloud_tea_openapi.utils.Utils.get_authorization`` — the ACS3 authorization builder the Tea
  client calls — fed the ``DaraRequest`` the client would build (path encoded with ``darabonba.url.Url.percent_encode``
  as the generated client does, query dict, full header dict, hex SHA-256 of the JSON body).
* Huawei: ``huaweicloudsdkcore.signer.signer.Signer.sign`` on an ``SdkRequest`` (path parameters encoded with
  ``quote(v, safe="")`` as ``huaweicloudsdkcore.client`` does); it also yields the wire target ``request.uri``.

Our side builds the request as the hooks do and sends it through a real ``httpx.Client`` (``MockTransport``), so
httpx's URL handling and its default headers (``Accept-Encoding``, ``Connection``, ...) are part of what is compared.
Random path segments and query names/values contain spaces, ``*``, ``~``, ``/``, ``+``, ``%``, ``=``, ``&``, unicode and
empty strings; with and without security tokens; GET without body and PUT with a JSON body.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
from alibabacloud_tea_openapi.utils import Utils as AliUtils
from darabonba.core import DaraCore
from darabonba.request import DaraRequest
from darabonba.url import Url as DaraURL
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.auth import (
    AcsV3Auth,
    HuaweiAkSkAuth,
    acs3_sign,
    percent_encode,
    sdk_canonical_query,
    sdk_hashed_payload,
    sdk_hmac_sign,
    sdk_signable,
)

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------------------- strategies

#: Characters the brief singles out, mixed into otherwise arbitrary unicode text (no surrogates).
SPECIAL = " *~/+%=&?#!'()[],;:@$\"é中版本\U0001f600"
texts = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=["Cs"])), max_size=12)
#: Path segments: ``.``/``..`` are rejected by the hooks before any request (httpx would normalise them away).
segments = texts.filter(lambda s: s not in {".", ".."})
#: Header values: what h11 can put on the wire (visible ASCII, inner spaces), optionally padded with spaces.
header_values = st.builds(
    lambda pad1, core, pad2: pad1 + core + pad2,
    st.sampled_from(["", " ", "  "]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    st.sampled_from(["", " ", "\t"]),
)
tokens = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
secrets = st.text(min_size=1, max_size=40)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=0))
json_bodies = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    ),
    min_size=1,
    max_size=4,
)
#: Extra caller headers: names made of token characters (with and without ``_``), never one our auth sets.
extra_header_names = st.text(alphabet="abcxyzXYZ-_019", min_size=1, max_size=12).filter(
    lambda n: not n.lower().startswith(("x-acs-", "x-sdk-", "authorization", "host", "x-project", "x-security"))
)

_captured: list[httpx.Request] = []


def _handler(request: httpx.Request) -> httpx.Response:
    _captured.append(request)
    return httpx.Response(200, json={})


CLIENT = httpx.Client(transport=httpx.MockTransport(_handler))


def _send(request: httpx.Request, auth: httpx.Auth) -> httpx.Request:
    _captured.clear()
    CLIENT.send(request, auth=auth)
    assert len(_captured) == 1
    return _captured[0]


# ------------------------------------------------------------------------------------------------------- Alibaba

#: Headers AcsV3Auth sets itself.
ALI_AUTH_HEADERS = {
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-accesskey-id",
    "x-acs-security-token",
}
ALI_HOSTS = [
    ("https", "aiworkspace.cn-hangzhou.aliyuncs.com"),
    ("https", "aiworkspace-vpc.cn-shanghai.aliyuncs.com"),
    ("http", "127.0.0.1:8080"),
]


@SETTINGS
@given(
    data=st.data(),
    method=st.sampled_from(["GET", "PUT"]),
    origin=st.sampled_from(ALI_HOSTS),
    path_params=st.lists(segments, min_size=1, max_size=3),
    query=st.dictionaries(texts, texts, max_size=5),
    ak=tokens,
    secret=secrets,
    token=st.none() | tokens,
    moment=moments,
    nonce=tokens,
    user_agent=header_values,
)
def test_alibaba_matches_sdk_get_authorization(
    data: st.DataObject,
    method: str,
    origin: tuple[str, str],
    path_params: list[str],
    query: dict[str, str],
    ak: str,
    secret: str,
    token: str | None,
    moment: datetime,
    nonce: str,
    user_agent: str,
) -> None:
    scheme, host = origin
    body = data.draw(json_bodies) if method == "PUT" else None
    extra = data.draw(st.none() | st.tuples(extra_header_names, header_values))

    # ---- the SDK: pathname as the generated client encodes it, headers as OpenApiClient assembles them.
    pathname = "/api/v1/models/" + "/versions/".join(DaraURL.percent_encode(p) for p in path_params)
    payload = DaraCore.to_json_string(body).encode("utf-8") if body is not None else b""
    hashed = hashlib.sha256(payload).hexdigest()
    sdk_headers = {
        "host": host,
        "x-acs-version": "2021-02-04",
        "x-acs-action": "UpdateModelVersion" if body is not None else "ListModelVersions",
        "user-agent": user_agent,
        "x-acs-date": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce,
        "accept": "application/json",
    }
    if extra is not None:
        sdk_headers[extra[0]] = extra[1]
    if body is not None:
        sdk_headers["content-type"] = "application/json; charset=utf-8"
    sdk_headers["x-acs-content-sha256"] = hashed
    sdk_headers["x-acs-credentials-provider"] = "static_sts" if token else "static_ak"
    if token is not None:
        sdk_headers["x-acs-accesskey-id"] = ak
        sdk_headers["x-acs-security-token"] = token
    sdk_request = DaraRequest()
    sdk_request.method = method
    sdk_request.pathname = pathname
    sdk_request.query = dict(query)
    sdk_request.headers = dict(sdk_headers)
    expected = AliUtils.get_authorization(sdk_request, "ACS3-HMAC-SHA256", hashed, ak, secret)

    # ---- ours: the request a hook builds (params= form encoding, JSON body), signed by AcsV3Auth in httpx.
    our_path = "/api/v1/models/" + "/versions/".join(percent_encode(p) for p in path_params)
    assert our_path == pathname
    headers = {k: v for k, v in sdk_headers.items() if k not in ALI_AUTH_HEADERS}
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") if body is not None else b""
    assert content == payload
    request = httpx.Request(method, f"{scheme}://{host}{our_path}", params=query, headers=headers, content=content)
    auth = AcsV3Auth(ak, secret, security_token=token, clock=lambda: moment, nonce=lambda: nonce)
    sent = _send(request, auth)

    assert sent.headers["authorization"] == expected
    assert sent.url.raw_path.partition(b"?")[0].decode() == pathname  # the canonical URI is what goes out
    assert sent.headers["x-acs-content-sha256"] == hashed
    assert sent.content == payload
    # Every header the SDK signed goes out with the value that was signed.
    for name, value in sdk_headers.items():
        assert sent.headers.get_list(name) == [value.strip()], name


@SETTINGS
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
    pathname=texts.map(lambda s: quote(s, safe="/~")),
    query=st.dictionaries(texts, st.none() | texts, max_size=5),
    headers=st.lists(st.tuples(st.sampled_from(["Accept", "accept", "X-Acs-Action", "x-a", "X-A"]), texts), max_size=6),
    payload=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    secret=secrets,
)
def test_acs3_sign_matches_sdk_on_arbitrary_inputs(
    method: str,
    pathname: str,
    query: dict[str, str | None],
    headers: list[tuple[str, str]],
    payload: str,
    secret: str,
) -> None:
    """The module-level primitive (used by the emulator) incl. what httpx cannot carry: null query values (dropped),
    case-variant duplicate header names (sorted, joined with ``,``), unicode header values, empty path."""
    sdk_headers: dict[str, str] = {}
    for name, value in headers:
        sdk_headers.setdefault(name, value)  # a dict: one value per exact spelling, as the SDK's header map
    sdk_request = DaraRequest()
    sdk_request.method = method
    sdk_request.pathname = pathname
    sdk_request.query = dict(query)
    sdk_request.headers = dict(sdk_headers)
    expected = AliUtils.get_authorization(sdk_request, "ACS3-HMAC-SHA256", payload, "AK", secret)

    _, _, signed, signature = acs3_sign(
        method=method,
        canonical_uri=pathname,
        query=[(k, v) for k, v in query.items() if v is not None],
        headers=list(sdk_headers.items()),
        hashed_payload=payload,
        access_key_secret=secret,
    )
    assert f"ACS3-HMAC-SHA256 Credential=AK,SignedHeaders={signed},Signature={signature}" == expected


# ------------------------------------------------------------------------------------------------------- Huawei

HW_ORIGINS = [
    "https://fabric.cn-north-4.myhuaweicloud.com",
    "https://fabric.cn-southwest-2.myhuaweicloud.com:8443",
    "http://127.0.0.1:9090",
]
query_names = st.text(alphabet=st.sampled_from("abcxyzAZ_-~ *+%é"), min_size=1, max_size=6)


@st.composite
def huawei_query(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """SDK ``query_params``: unique names with a str/int/bool/list value, or one name repeated with str values.

    (Repeated names with non-str values are left out: the SDK sorts raw values, which would order ints numerically
    or raise TypeError on mixed types; our hooks stringify first and never repeat such parameters.)
    """
    pairs: list[tuple[str, Any]] = []
    for name in draw(st.lists(query_names, unique=True, max_size=5)):
        kind = draw(st.sampled_from(["str", "int", "bool", "list", "repeat"]))
        if kind == "str":
            pairs.append((name, draw(texts)))
        elif kind == "int":
            pairs.append((name, draw(st.integers(min_value=-(10**6), max_value=10**9))))
        elif kind == "bool":
            pairs.append((name, draw(st.booleans())))
        elif kind == "list":
            pairs.append((name, draw(st.lists(texts, min_size=1, max_size=3))))
        else:
            pairs.extend((name, v) for v in draw(st.lists(texts, min_size=2, max_size=3)))
    return draw(st.permutations(pairs))


def _hook_query_pairs(query_params: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Our hooks' query model: lists expand to one pair per element, booleans are ``true``/``false``."""
    pairs: list[tuple[str, str]] = []
    for name, value in query_params:
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
    return pairs


@SETTINGS
@given(
    data=st.data(),
    method=st.sampled_from(["GET", "PUT"]),
    origin=st.sampled_from(HW_ORIGINS),
    path_params=st.lists(segments, min_size=1, max_size=3),
    query=huawei_query(),
    ak=tokens,
    sk=secrets,
    project_id=st.none() | tokens,
    token=st.none() | tokens,
    moment=moments,
    user_agent=header_values,
    content_type=st.sampled_from(["application/json", "application/json;charset=UTF-8"]),
)
def test_huawei_matches_sdk_signer(
    data: st.DataObject,
    method: str,
    origin: str,
    path_params: list[str],
    query: list[tuple[str, Any]],
    ak: str,
    sk: str,
    project_id: str | None,
    token: str | None,
    moment: datetime,
    user_agent: str,
    content_type: str,
) -> None:
    body = data.draw(json_bodies) if method == "PUT" else None
    extra = data.draw(st.none() | st.tuples(extra_header_names, header_values))
    scheme, _, host = origin.partition("://")
    resource_path = "/v1/workspaces/" + "/models/".join(quote(p, safe="") for p in path_params)
    payload = json.dumps(body).encode("utf-8") if body is not None else b""

    # ---- the SDK: headers as the client and its credentials assemble them, then Signer.sign.
    sdk_headers = {"Content-Type": content_type, "User-Agent": user_agent}
    if project_id is not None:
        sdk_headers["X-Project-Id"] = project_id
    if token is not None:
        sdk_headers["X-Security-Token"] = token
    if extra is not None:
        sdk_headers[extra[0]] = extra[1]
    sdk_headers["X-Sdk-Date"] = moment.strftime("%Y%m%dT%H%M%SZ")
    sdk_request = SdkRequest(
        method=method,
        schema=scheme,
        host=host,
        resource_path=resource_path,
        query_params=[(k, list(v) if isinstance(v, list) else v) for k, v in query],
        header_params=dict(sdk_headers),
        body=payload,
    )
    Signer(SimpleNamespace(ak=ak, sk=sk)).sign(sdk_request)
    expected = sdk_request.header_params["Authorization"]

    # ---- ours: canonical query appended verbatim to the encoded path, signed by HuaweiAkSkAuth in httpx.
    wire_query = sdk_canonical_query(_hook_query_pairs(query))
    target = f"{resource_path}?{wire_query}" if wire_query else resource_path
    assert target == sdk_request.uri  # the wire target is the SDK's, byte for byte
    headers = {k: v for k, v in sdk_headers.items() if k not in {"X-Project-Id", "X-Security-Token", "X-Sdk-Date"}}
    request = httpx.Request(method, f"{origin}{target}", headers=headers, content=payload)
    auth = HuaweiAkSkAuth(ak, sk, project_id=project_id, security_token=token, clock=lambda: moment)
    sent = _send(request, auth)

    assert sent.headers["authorization"] == expected
    assert sent.url.raw_path.decode() == sdk_request.uri
    assert sent.content == payload
    # The SDK sends trimmed header values (it rewrites them while signing); so do we.
    for name, value in sdk_request.header_params.items():
        assert sent.headers.get_list(name) == [value], name


@SETTINGS
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "patch"]),
    resource_path=texts.map(lambda s: "/" + quote(s, safe="/")),
    query=huawei_query(),
    headers=st.lists(
        st.tuples(extra_header_names, texts.map(lambda s: f" {s} ")), unique_by=lambda t: t[0].lower(), max_size=5
    ).map(dict),
    body=st.binary(max_size=20),
    content_sha=st.none() | st.sampled_from(["UNSIGNED-PAYLOAD", ""]),
    sk=secrets,
    moment=moments,
)
def test_sdk_hmac_sign_matches_sdk_on_arbitrary_inputs(
    method: str,
    resource_path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    content_sha: str | None,
    sk: str,
    moment: datetime,
) -> None:
    """The module-level primitive (used by the emulator): unicode header values, ``_`` names, binary bodies,
    ``X-Sdk-Content-Sha256`` (present, empty or absent) and non-canonical paths, straight against ``Signer``."""
    sdk_date = moment.strftime("%Y%m%dT%H%M%SZ")
    header_params = {**headers, "Host": "h.example", "X-Sdk-Date": sdk_date}
    if content_sha is not None:
        header_params["X-Sdk-Content-Sha256"] = content_sha
    sdk_request = SdkRequest(
        method=method,
        host="h.example",
        resource_path=resource_path,
        query_params=[(k, list(v) if isinstance(v, list) else v) for k, v in query],
        header_params=dict(header_params),
        body=body,
    )
    Signer(SimpleNamespace(ak="AK", sk=sk)).sign(sdk_request)

    _, _, signed, signature = sdk_hmac_sign(
        method=method,
        raw_path=resource_path,
        query=_hook_query_pairs(query),
        headers=[(k, v) for k, v in header_params.items() if sdk_signable(k)],
        hashed_payload=sdk_hashed_payload(body, content_sha),
        sdk_date=sdk_date,
        secret_key=sk,
    )
    expected = sdk_request.header_params["Authorization"]
    assert f"SDK-HMAC-SHA256 Access=AK, SignedHeaders={signed}, Signature={signature}" == expected
