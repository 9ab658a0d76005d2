"""A light client of a Sahara chain under CometBFT: headers verified by CometBFT's own
light client, state verified with ``eth_getProof`` against them.

Headers. :class:`LightProxy` runs ``cometbft light`` (the light client in the same
binary as the node) as a verifying proxy on a loopback port: from a trusted header
(``--trust-height`` and ``--trust-hash``; by default the primary's header at height 1,
trusted on first use) it checks every header it hands out against the validator sets'
signatures (skipping verification, trust level 1/3) and cross-checks the primary with
the witnesses. Its ``/header`` answers only verified headers; a header it cannot verify
is an error.

The binding. The app hash CometBFT carries in the header of height H + 1 is the EVM
state root of block H (``FinalizeBlock`` returns the state root as the app hash, see
:mod:`sahara_cli.node.abci.app`; CometBFT height H is EVM block H). So a verified header
H + 1 gives the state root of EVM block H with nothing else to trust.

State. :meth:`LightClient.account` asks the (untrusted) Ethereum JSON-RPC for
``eth_getProof`` at block H and walks the account proof from that verified state root
down to keccak(address), then each storage proof from the account's storage root. Any
value the node reports that the proof does not show, or a proof that does not hash up
to the root, raises :class:`~sahara_cli.errors.LightProofInvalid`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_cli.errors import (
    CometBFTError,
    CometBFTUnreachable,
    LightHeaderRejected,
    LightProofInvalid,
    LightUnreachable,
    UsageError,
)
from sahara_cli.gobin import COMETBFT, find_binary
from sahara_cli.node.cometbft import CometRPC, http_url
from sahara_cli.node.light_proof import (
    TrustRoot,
    VerifiedAccount,
    VerifiedHeader,
    verify_account,
)
from sahara_cli.node.localnet import free_port, tail

if TYPE_CHECKING:
    from sahara_cli.node.results import LightAccount, LightHead

__all__ = [
    "LightClient",
    "LightProxy",
    "TrustRoot",
    "VerifiedAccount",
    "VerifiedHeader",
    "verify_account",
]

HOST = "127.0.0.1"
#: How long a trusted header stays usable (CometBFT's default for ``cometbft light``).
TRUSTING_PERIOD = "168h"


class LightProxy:
    """``cometbft light`` as a verifying proxy on a loopback port, in a scratch folder."""

    def __init__(
        self,
        chain_id: str,
        primary: str,
        witnesses: Sequence[str],
        trust: TrustRoot,
        *,
        cometbft_bin: str | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.primary = primary
        self.witnesses = list(witnesses) or [primary]
        self.trust = trust
        self.binary = find_binary(COMETBFT, cometbft_bin)
        self.port = 0
        self.url = ""
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "light.log"

    def start(self, timeout: float = 30.0) -> None:
        """Starts the proxy and waits until it serves the trusted header; a trust root it
        cannot confirm raises :class:`LightHeaderRejected`."""
        self.workdir = Path(tempfile.mkdtemp(prefix="sahara-light-"))
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        argv = [
            self.binary,
            "light",
            self.chain_id,
            "--primary",
            self.primary,
            "--witnesses",
            ",".join(self.witnesses),
            "--height",
            str(self.trust.height),
            "--hash",
            self.trust.hash,
            "--trusting-period",
            TRUSTING_PERIOD,
            "--home-dir",
            str(self.workdir / "db"),
            "--laddr",
            f"tcp://{HOST}:{self.port}",
        ]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603  # the configured cometbft binary
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                lines = [line for line in tail(self.log_path, 20) if line.strip()]
                reason = _reason(lines)
                self.close()
                raise LightHeaderRejected(
                    f"CometBFT's light client refused the trust root (height "
                    f"{self.trust.height}, hash {self.trust.hash}): {reason}",
                    hint="Check --trust-height and --trust-hash against a node you trust.",
                    details={"log": lines},
                )
            try:
                CometRPC(self.url, timeout=2.0).call("health")
                return
            except CometBFTError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise LightUnreachable(f"CometBFT's light client did not start in {timeout:g} s")
            time.sleep(0.05)

    def header(self, height: int) -> VerifiedHeader:
        """The verified header at ``height``, from the proxy's ``/commit``: the signed
        header of a light block it verified."""
        try:
            doc = CometRPC(self.url, timeout=30.0).call("commit", height=str(height))
        except CometBFTUnreachable as exc:
            raise LightUnreachable(
                f"CometBFT's light client does not answer: {exc.message}"
            ) from None
        except CometBFTError as exc:
            raise LightHeaderRejected(
                f"CometBFT's light client could not verify header {height}: {exc.message}"[:400],
                hint="The primary or a witness serves headers the validators did not sign.",
            ) from None
        signed = doc["signed_header"]
        head = signed["header"]
        return VerifiedHeader(
            height=int(head["height"]),
            hash=str(signed["commit"]["block_id"]["hash"]),
            app_hash=bytes.fromhex(head.get("app_hash") or ""),
            time=str(head.get("time", "")),
            chain_id=str(head.get("chain_id", "")),
            validators_hash=str(head.get("validators_hash", "")),
        )

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _reason(lines: list[str]) -> str:
    for line in reversed(lines):
        if "err" in line.lower() or "expected" in line.lower():
            return line.strip()[-300:]
    return lines[-1].strip()[-300:] if lines else "it exited"


class LightClient:
    """Verified headers and state of a remote chain: ``eth_rpc`` (any node's Ethereum
    JSON-RPC, untrusted), ``comet_rpc`` (the primary CometBFT RPC) and ``witnesses``
    (other CometBFT RPCs that cross-check it; none: the primary alone)."""

    def __init__(
        self,
        eth_rpc: str,
        comet_rpc: str,
        *,
        witnesses: Sequence[str] = (),
        trust_height: int | None = None,
        trust_hash: str | None = None,
        cometbft_bin: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.eth_rpc = http_url(eth_rpc)
        self.comet_rpc = http_url(comet_rpc)
        self.witnesses = [http_url(w) for w in witnesses]
        if trust_height is not None and trust_height < 1:
            raise UsageError(f"--trust-height must be 1 or more, got {trust_height}")
        if trust_hash is not None:
            trust_hash = trust_hash.removeprefix("0x").upper()
            if len(trust_hash) != 64 or any(c not in "0123456789ABCDEF" for c in trust_hash):
                raise UsageError("--trust-hash must be a header hash: 64 hex digits")
        self.trust_height = trust_height
        self.trust_hash = trust_hash
        self.cometbft_bin = cometbft_bin
        self.timeout = timeout
        self.proxy: LightProxy | None = None
        self.trust: TrustRoot | None = None

    # -- setup ----------------------------------------------------------------------------

    def _primary(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return CometRPC(self.comet_rpc, self.timeout).call(path, **(params or {}))
        except CometBFTUnreachable as exc:
            raise LightUnreachable(
                exc.message,
                hint="Check --comet-rpc (a validator's CometBFT RPC, e.g. port 26657).",
            ) from None
        except CometBFTError as exc:
            raise LightUnreachable(f"the CometBFT RPC at {self.comet_rpc}: {exc.message}") from None

    def start(self) -> LightClient:
        chain_id = str(self._primary("status")["node_info"]["network"])
        height = self.trust_height or 1
        if self.trust_hash is not None:
            trust = TrustRoot(height, self.trust_hash, "--trust-hash")
        else:
            block_id = self._primary("block", {"height": str(height)})["block_id"]
            trust = TrustRoot(
                height, str(block_id["hash"]).upper(), "the primary (trusted on first use)"
            )
        proxy = LightProxy(
            chain_id, self.comet_rpc, self.witnesses, trust, cometbft_bin=self.cometbft_bin
        )
        proxy.start()
        self.proxy, self.trust = proxy, trust
        return self

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    def __enter__(self) -> LightClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- headers --------------------------------------------------------------------------

    def latest_height(self) -> int:
        """The newest height the primary and every witness have: only a number to ask
        for, verified after. (A header a witness does not have yet makes CometBFT's light
        client wait 30 s for it, longer than its RPC lets a request take.)"""
        heights = [int(self._primary("status")["sync_info"]["latest_block_height"])]
        for witness in self.witnesses:
            if witness == self.comet_rpc:
                continue
            try:
                height = CometRPC(witness, self.timeout).latest_height()
            except CometBFTError as exc:
                raise LightUnreachable(
                    f"the witness {witness} is unreachable: {exc.message}",
                    hint="Check --witness (another node's CometBFT RPC).",
                ) from None
            heights.append(height)
        return min(heights)

    def header(self, height: int | None = None) -> VerifiedHeader:
        """The verified header at ``height`` (None: the primary's latest). Always asked
        for by height: the proxy's own "latest" answers nothing once it is up to date."""
        assert self.proxy is not None, "start() first"
        return self.proxy.header(self.latest_height() if height is None else height)

    def head(self) -> LightHead:
        """The newest verified header and the trust it was verified from (``light head``)."""
        from sahara_cli.node.results import LightHead

        assert self.trust is not None, "start() first"
        return LightHead(**self.header()._fields(), trusted=self.trust.result())

    def verified_account(
        self, address: str, slots: Sequence[int] = (), block: int | None = None
    ) -> LightAccount:
        """:meth:`account` as the typed result ``light balance`` and ``light storage`` print."""
        assert self.trust is not None, "start() first"
        return self.account(address, slots, block).result(self.trust)

    def state_header(self, block: int | None = None) -> VerifiedHeader:
        """The verified header whose app hash is EVM block ``block``'s state root (None:
        the newest such block)."""
        if block is None:
            return self.header()
        if block < 0:
            raise UsageError(f"--block must be 0 or more, got {block}")
        self._wait_height(block + 1)
        return self.header(block + 1)

    def _wait_height(self, height: int, timeout: float = 30.0) -> None:
        """Waits (a few blocks at most) until the primary has committed ``height``: block
        H's state root is in header H + 1, which exists one block after H."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest_height()
            if latest >= height:
                return
            if time.monotonic() > deadline:
                raise UsageError(
                    f"block {height - 1} has no verified state root yet: the chain is at "
                    f"height {latest}, and header {height} carries it",
                )
            time.sleep(0.1)

    def follow(
        self, interval: float = 1.0, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[VerifiedHeader]:
        """Each new verified header as the chain grows (every height, in order)."""
        last = self.header()
        yield last
        while not stop():
            time.sleep(interval)
            newest = self.header()
            for height in range(last.height + 1, newest.height):
                yield self.header(height)
            if newest.height > last.height:
                yield newest
                last = newest

    # -- state ----------------------------------------------------------------------------

    def _eth(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(  # noqa: S310  # http(s) only, checked
            self.eth_rpc, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise LightUnreachable(f"{method} at {self.eth_rpc}: HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise LightUnreachable(
                f"the JSON-RPC at {self.eth_rpc} is unreachable: {exc}",
                hint="Check --rpc (a node's Ethereum JSON-RPC).",
            ) from None
        if not isinstance(doc, dict):
            raise LightProofInvalid(f"{method}: the JSON-RPC answered {str(doc)[:80]}")
        if doc.get("error"):
            raise LightUnreachable(f"{method} at {self.eth_rpc}: {doc['error'].get('message')}")
        return doc.get("result")

    def account(
        self, address: str, slots: Sequence[int] = (), block: int | None = None
    ) -> VerifiedAccount:
        """Balance, nonce and ``slots`` of ``address`` at EVM block ``block`` (None: the
        newest with a verified header), each proven against the verified state root."""
        raw = _address(address)
        header = self.state_header(block)
        number = header.evm_block
        proof = self._eth(
            "eth_getProof",
            ["0x" + raw.hex(), [hex(s) for s in slots], hex(number)],
        )
        return verify_account(raw, proof, header, slots)


def _address(text: str) -> bytes:
    from sahara_cli.identity.keys import parse_address

    return bytes.fromhex(parse_address(text)[2:])
