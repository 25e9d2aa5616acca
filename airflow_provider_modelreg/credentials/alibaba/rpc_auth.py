"""The RPC signature (``SignatureVersion=1.0``) as an ``httpx.Auth``: STS ``AssumeRole`` calls signed with the
base AccessKey."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timezone
from urllib.parse import urlencode

import httpx

from airflow_provider_modelreg.auth import AlibabaKeyAuth
from airflow_provider_modelreg.credentials.alibaba.checks import _STS_TIME
from airflow_provider_modelreg.credentials.rpc import rpc_signature


class RpcSignatureAuth(AlibabaKeyAuth):
    """Signs an RPC-style request in its query (``SignatureVersion=1.0``), afresh for every attempt: a retried
    ``AssumeRole`` gets a new ``Timestamp`` and ``SignatureNonce`` (STS refuses a nonce seen before).

    :param access_key_id: the base AccessKey ID.
    :param access_key_secret: its secret (never shown).
    :param security_token: STS token of a temporary base key.
    :param clock: aware UTC clock (tests); ``nonce`` likewise.
    """

    @staticmethod
    def new_nonce() -> str:
        """The default ``SignatureNonce``: a random UUID in its dashed form (the library's)."""
        return str(uuid.uuid4())

    def __repr__(self) -> str:
        return f"RpcSignatureAuth(access_key_id={self.access_key_id!r}, sts={self._security_token is not None})"

    def signed_params(self, method: str, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` with the signing parameters and ``Signature`` added (the library's ``_refresh_credentials``)."""
        query = {
            **params,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "Timestamp": self._clock().astimezone(timezone.utc).strftime(_STS_TIME),
            "SignatureNonce": self._nonce(),
            "AccessKeyId": self.access_key_id,
        }
        if self._security_token:
            query["SecurityToken"] = self._security_token
        query["Signature"] = rpc_signature(method, query, self._secret)
        return query

    def sign(self, request: httpx.Request) -> None:
        """Replace ``request``'s query with its signed form (:meth:`signed_params`)."""
        params = dict(request.url.params.multi_items())
        signed = self.signed_params(request.method, params)
        request.url = request.url.copy_with(query=urlencode(signed).encode("ascii"))


_UNSIGNED = httpx.Auth()  # AssumeRoleWithOIDC, metadata and URI calls carry no signature
