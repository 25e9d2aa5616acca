"""The Alibaba Cloud RPC signature (``SignatureVersion=1.0``): STS ``AssumeRole`` is signed with it.

Kept apart from :mod:`~airflow_provider_modelreg.credentials.alibaba` and free of Airflow imports, so that the
emulator verifies ``AssumeRole`` with the very code that signs it (its command line imports nothing of Airflow).

Reference: ``alibabacloud_credentials/utils/parameter_helper.py`` (``compose_string_to_sign``, ``sign_string``).
One difference on purpose: names and values are percent-encoded as the RPC signature documentation says (a space
is ``%20``), where the library's ``quote_plus`` gives ``+``; the two agree on every value without a space.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from airflow_provider_modelreg.auth import percent_encode

__all__ = ["rpc_signature", "rpc_string_to_sign"]


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&<encoded canonical query>``: names sorted, names and values percent-encoded (RFC 3986)."""
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in sorted(params))
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def rpc_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64 HMAC-SHA1 of :func:`rpc_string_to_sign`, keyed with ``secret + "&"``."""
    key = (access_key_secret + "&").encode("utf-8")
    mac = hmac.new(key, rpc_string_to_sign(method, params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")
