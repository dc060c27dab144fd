"""Unsubscribe links: a signed token per address, its check, and the links that carry it.

Every digest carries a one-click (RFC 8058) https link and a mailto link; both hold
:func:`unsubscribe_token`, an HMAC of the list id and the address, so that the endpoint can
unsubscribe the address with :func:`verify_unsubscribe_token` and nobody can unsubscribe others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from typing import Final

import attrs

from ._errors import SubscriberError
from .mail import normalize_address

__all__ = [
    "PREVIEW_KEY",
    "Unsubscribe",
    "unsubscribe_links",
    "unsubscribe_token",
    "verify_unsubscribe_token",
]

PREVIEW_KEY: Final = b"solidline PREVIEW key: links signed with it do not unsubscribe anyone"


def _key_bytes(key: str | bytes) -> bytes:
    data = key.encode() if isinstance(key, str) else key
    if not data:
        raise ValueError("the unsubscribe key is empty")
    return data


def unsubscribe_token(address: str, key: str | bytes, *, list_id: str = "") -> str:
    """The token that proves an unsubscribe request for ``address`` came from our link.

    HMAC-SHA256 over the list id and the canonical address, base64url without padding.
    """
    message = b"solidline-unsubscribe\0" + list_id.encode() + b"\0" + address.encode()
    digest = hmac.new(_key_bytes(key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_unsubscribe_token(
    address: str, token: str, key: str | bytes, *, list_id: str = ""
) -> bool:
    """Whether ``token`` is the unsubscribe token of ``address`` (a constant-time comparison).

    Args:
        address: the address to unsubscribe, as the link gives it.
        token: the token from the link.
        key: the key the digests were signed with (the ``unsubscribe_key_env`` variable).
        list_id: the list id the digests were sent with.
    """
    try:
        expected = unsubscribe_token(normalize_address(address), key, list_id=list_id)
    except (SubscriberError, ValueError):
        return False
    return hmac.compare_digest(expected.encode(), str(token).encode("utf-8", "replace"))


@attrs.frozen
class Unsubscribe:
    """A subscriber's one-click (https) and mailto unsubscribe links."""

    url: str
    mailto: str


def unsubscribe_links(
    address: str, *, key: str | bytes, list_id: str, url: str, mailto: str
) -> Unsubscribe:
    """The links for ``List-Unsubscribe`` and the footer, carrying a signed token.

    Args:
        address: the subscriber's canonical address.
        key: the HMAC key.
        list_id: the list id (part of what is signed).
        url: the https endpoint that takes ``POST List-Unsubscribe=One-Click``.
        mailto: the address that takes unsubscribe mails.
    """
    token = unsubscribe_token(address, key, list_id=list_id)
    query = urllib.parse.urlencode({"address": address, "token": token})
    https = f"{url}{'&' if '?' in url else '?'}{query}"
    subject = urllib.parse.quote(f"unsubscribe {token}")
    return Unsubscribe(https, f"mailto:{mailto}?subject={subject}")
