"""What keeps a credential's secrets out of sight: Airflow's masker for derived secrets, a URL shown without its
userinfo, and server text scrubbed of every secret a source knows."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, quote_plus, urlsplit


def mask_derived(*secrets: str | None) -> None:
    """Register derived secrets (temporary keys, tokens) with Airflow's masker as soon as they are read."""
    from airflow.providers.common.compat.sdk import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


#: Largest token file read (a Kubernetes service-account token is about 1 KB).


def shown_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL for messages: never its userinfo (``ak:secret@``), query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a URL that cannot be shown)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"


#: secrets shorter than this are not scrubbed (replacing "1" in every message would garble it, and reveal it)
_SCRUB_MIN = 6


#: a message cut short ends a secret's prefix this long or longer: scrubbed too
_PARTIAL_MIN = 4


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every secret (and its percent-encoded forms) replaced by ``***``.

    Server text reaches us cut at a few hundred characters, possibly inside a secret: a tail that is the start of
    a secret is replaced too.
    """
    forms: set[str] = set()
    for secret in {s for s in secrets if s and len(s) >= _SCRUB_MIN}:
        forms.update({secret, quote(secret, safe=""), quote_plus(secret), quote(quote(secret, safe=""), safe="")})
    for form in sorted(forms, key=len, reverse=True):
        if form in text:
            text = text.replace(form, "***")
    body, dots = (text[:-3], "...") if text.endswith("...") else (text, "")
    for form in forms:
        for size in range(len(form) - 1, _PARTIAL_MIN - 1, -1):
            if body.endswith(form[:size]):
                return body[:-size] + "***" + dots
    return text
