"""The licensee's side of ``sahara vault serve``: ask for a data key, fetch the blocks.

:class:`KeyClient` signs each key request for the URL it talks to (the request's
audience, :func:`~sahara_cli.vault.access.audience_of`), so the server it reaches is the
only one that takes it. Errors the server answers with come back as the same
:class:`~sahara_cli.errors.SaharaError` classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    SaharaError,
    VaultBackendError,
    VaultItemNotFound,
    VaultLicenseExpired,
    VaultNoLicense,
    VaultRateLimited,
    VaultRequestInvalid,
    VaultServerUnreachable,
)

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer


class KeyClient:
    """Talks to an owner's ``vault serve`` over HTTP."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    @property
    def audience(self) -> str:
        """The audience requests to this server are signed for."""
        from sahara_cli.vault.access import audience_of

        return audience_of(self.url)

    def close(self) -> None:
        self._http.close()

    def _fail(self, exc: Exception) -> VaultServerUnreachable:
        return VaultServerUnreachable(f"vault server {self.url} is unreachable: {exc}")

    def info(self) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.get(f"{self.url}/v1/info")
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        return self._json(response)

    def ask_key(self, signer: Signer, asset: int, cid: str, chain: int) -> dict[str, Any]:
        """Sign a fresh key request for this server and send it."""
        from sahara_cli.vault.access import KeyRequest

        request = KeyRequest.new(signer, asset, cid, chain, audience=self.audience)
        return self.request_key(request.signed(signer))

    def request_key(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.post(f"{self.url}/v1/keys", json=body)
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        return self._json(response)

    def _json(self, response: Any) -> dict[str, Any]:
        try:
            data = response.json()
        except (ValueError, json.JSONDecodeError):
            raise VaultBackendError(
                f"vault server {self.url} answered HTTP {response.status_code} without JSON"
            ) from None
        if response.status_code >= 400 or "error" in data:
            error = data.get("error") or {}
            raise _remote_error(error, response.status_code, self.url)
        return dict(data)

    def blocks(self, cid: str) -> Iterator[tuple[Any, bytes]]:
        """Stream the blocks of ``cid`` (each checked against its CID by the CAR reader)."""
        import httpx

        from sahara_cli.vault import car

        try:
            with self._http.stream("GET", f"{self.url}/v1/dag/{cid}") as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                reader = _StreamReader(response.iter_bytes(1 << 20))
                _roots, blocks = car.read_car(reader)
                yield from blocks
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None


class _StreamReader:
    """A minimal binary file over an iterator of byte chunks (for ``read_car``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            for chunk in self._chunks:
                self._buffer += chunk
            out = bytes(self._buffer)
            self._buffer.clear()
            return out
        while len(self._buffer) < size:
            more = next(self._chunks, None)
            if more is None:
                break
            self._buffer += more
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


_REMOTE = {
    "vault.no_license": VaultNoLicense,
    "vault.license_expired": VaultLicenseExpired,
    "vault.request_invalid": VaultRequestInvalid,
    "vault.not_found": VaultItemNotFound,
    "vault.rate_limited": VaultRateLimited,
}


def _remote_error(error: dict[str, Any], status: int, url: str) -> SaharaError:
    code = str(error.get("code", ""))
    message = str(error.get("message") or f"vault server {url} answered HTTP {status}")
    cls = _REMOTE.get(code)
    if cls is not None:
        return cls(message, hint=error.get("hint"), details=error.get("details"))
    return VaultBackendError(f"vault server {url}: {message}", code=code or None)
