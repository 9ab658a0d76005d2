"""The one client of CometBFT's RPC, with one translation of its failures.

The validator's application (:mod:`sahara_cli.node.abci.rpc`: ``broadcast_tx_sync``, the
mempool), the light client (:mod:`sahara_cli.node.light`: ``status``, ``block``, the
proxy's ``commit``) and the localnet (:mod:`sahara_cli.node.localnet`: heights, peers)
all speak to CometBFT through :class:`CometRPC`.

Every failure is a :class:`~sahara_cli.errors.CometBFTError`: nothing answering (or an
answer that is not CometBFT's JSON) is its subclass
:class:`~sahara_cli.errors.CometBFTUnreachable`; an error object from CometBFT keeps
CometBFT's own words as ``message`` (callers match on them: "already exists in cache").
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from sahara_cli.errors import CometBFTError, CometBFTUnreachable, UsageError

__all__ = ["CometRPC", "http_url"]


def http_url(url: str) -> str:
    """``http(s)://HOST:PORT`` from what people write: a URL, ``tcp://HOST:PORT``
    (CometBFT's spelling of its ``laddr``) or a bare ``HOST:PORT``."""
    if url.startswith("tcp://"):
        url = "http://" + url.removeprefix("tcp://")
    elif "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"expected an http(s) URL, got {url!r}")
    return url.rstrip("/")


class CometRPC:
    """JSON-RPC 2.0 over HTTP POST to a CometBFT RPC (a node's, or a light proxy's)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = http_url(url)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"CometRPC({self.url!r})"

    def call(self, method: str, **params: Any) -> Any:
        """The ``result`` of ``method`` with ``params`` (CometBFT takes numbers as strings).

        Raises :class:`CometBFTUnreachable` when nothing answers and
        :class:`CometBFTError` with CometBFT's text when it answers an error.
        """
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(  # noqa: S310  # http(s) only, checked above
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:  # CometBFT answers errors with a 500 too
            try:
                doc = json.load(exc)
            except ValueError:
                raise CometBFTError(
                    f"CometBFT RPC {method} at {self.url}: HTTP {exc.code}"
                ) from None
        except (OSError, ValueError) as exc:
            raise CometBFTUnreachable(
                f"the CometBFT RPC at {self.url} is unreachable: {exc}"
            ) from None
        if not isinstance(doc, dict):
            raise CometBFTUnreachable(f"{self.url} did not answer as a CometBFT RPC")
        error = doc.get("error")
        if error:
            detail = error.get("data") or error.get("message") if isinstance(error, dict) else None
            raise CometBFTError(str(detail or error))
        if "result" not in doc:
            raise CometBFTUnreachable(f"{self.url} did not answer as a CometBFT RPC")
        return doc["result"]

    # -- the few reads every caller wants ---------------------------------------------------

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def latest_height(self) -> int:
        """The height of the newest block the node has."""
        try:
            return int(self.status()["sync_info"]["latest_block_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CometBFTError(f"{self.url} answered status without a height ({exc})") from None
