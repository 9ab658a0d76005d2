"""Serving an agent over an OpenAI-compatible API, metered and paid on chain.

``sahara agent publish`` registers the agent as an asset and offers an API license at a
price per call (:mod:`.publish`). Callers buy calls with ``sahara license buy`` and make
an API key with ``sahara agent key``: a token signed by their Sahara ID (EIP-191) that
names a key id, their address, the agent's asset, the chain and an expiry
(:mod:`.api_keys`).
``sahara agent serve`` answers ``POST /v1/chat/completions`` (streaming too),
``POST /v1/keys/revoke``, ``GET /v1/models`` and ``GET /health``. Request bodies over
``max_body`` bytes are refused with 413 before they are read.

Each answered call, one at a time (one model, one runner):

1. the key's signature, chain, agent, expiry, lifetime and revocation are checked
   (else 401);
2. the caller's oldest API license of the agent with calls left is found, from the
   ``Licensed`` events filtered by holder and read live (else 403; the agent's owner is
   served without a license and without metering);
3. the agent prepares the reply (``Agent.prepare``: retrieval and tool calls, without
   the owner's long-term memory or feedback; the caller's ``system`` messages become
   user turns, never part of the agent's system prompt); private vault text is opened
   only from the spec's ``serve.private_scopes`` and only when the agent's ID owns the
   item or holds a valid Partnership license of its asset; nothing is sent yet;
4. the reply is generated (``Agent.finish``), through a
   :class:`~sahara_cli.agent.servers.quote_guard.QuoteGuard` that redacts every run of
   more than ``serve.max_quote_words`` words copied from a private passage (it holds
   back that many words of a stream); nothing of it is sent yet;
5. one transaction, the inference SAP's ``record(asset, digest, prompt_hash,
   answer_hash, sources, license, 1)``, records the answer and meters the call: one
   call's price moves from the caller's prepayment to the agent's revenue, which the
   Attribution contract splits between the agent's owner, its model's contributors and
   the contributors of the vault assets the answer retrieved (the first four). If it is
   refused (the caller refunded the license meanwhile, say), the caller gets a 403 and
   no answer, and the local record is dropped; if it fails otherwise (the node went
   away), the caller gets the error and no answer, and the local record stays pending
   with the license and the call;
6. only then is the reply sent (streamed or whole): a streamed reply's chunks go out
   once the call is paid for. The agent's owner is not metered: the owner's reply
   streams as it is generated and its record goes on chain after it, best effort (a
   failure is logged, the local record stays pending, and the answer goes out with
   ``record_tx: null`` and a ``record_error``).

The response carries the record and its transaction (``record_tx``, and ``meter_tx``:
the same transaction's hash, block, gas and fee when it metered the call) in a
``sahara`` object (and the ``X-Sahara-*`` headers, for non-streaming calls). Sources
are named (content id, name, asset id, score, kind), never quoted, and tool calls are
named only by tool, success and time (no arguments, error or output): the caller pays
for the answer, not for the vault's text.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sahara_cli.agent.servers.api_keys import (
    DEFAULT_TTL,
    KEY_HEADER,
    KEY_PREFIX,
    MAX_TTL,
    ApiKey,
    RevokedKeys,
    decode_api_key,
    make_api_key,
    verify_api_key,
)
from sahara_cli.agent.servers.limits import DEFAULT_RATE_PER_IP
from sahara_cli.agent.servers.openai_wire import (
    MAX_BODY,
    MAX_PENDING,
    completion,
    error_body,
    http_status,
    parse_request,
    parse_sampling,
    usage,
)
from sahara_cli.errors import (
    AgentBusy,
    AgentError,
    AgentNoLicense,
    NotPermitted,
    ProtocolReverted,
    SaharaError,
    UsageError,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from sahara_cli.agent.brain import Agent, Turn
    from sahara_cli.agent.servers.quote_guard import QuoteGuard
    from sahara_cli.agent.types import Answer, Message
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import License, Protocol
    from sahara_cli.vault.db import Item

__all__ = [
    "DEFAULT_TTL",
    "KEY_HEADER",
    "KEY_PREFIX",
    "MAX_BODY",
    "MAX_PENDING",
    "MAX_TTL",
    "AgentServer",
    "ApiKey",
    "RevokedKeys",
    "Served",
    "completion",
    "decode_api_key",
    "error_body",
    "http_status",
    "make_api_key",
    "parse_request",
    "parse_sampling",
    "serve_agent",
    "usage",
    "verify_api_key",
]

MAX_SOURCES = 4


# --- the server ---------------------------------------------------------------------------


#: What a caller learns of each source: never its text.
SOURCE_FIELDS = ("cid", "name", "asset_id", "score", "kind")
#: What a caller learns of each tool call: which tool, whether it worked, how long it
#: took. Never its arguments (the model writes them after reading private passages, so
#: they can carry them out), its error (which may quote them) or its output.
TOOL_CALL_FIELDS = ("tool", "ok", "seconds")


@dataclass
class Served:
    """One answered call: the answer and what went on chain for it."""

    answer: Answer
    license_id: int
    meter_tx: dict[str, Any] | None
    record: dict[str, Any]
    paid_sources: list[int]
    record_error: str | None = None
    guard: dict[str, Any] = field(default_factory=dict)

    @property
    def finish_reason(self) -> str:
        """``content_filter`` when the guard redacted something, else the runner's."""
        if self.guard.get("redacted_spans"):
            return "content_filter"
        return self.answer.finish_reason or "stop"

    def extension(self) -> dict[str, Any]:
        """The ``sahara`` object of a response: what was paid and recorded, and which
        sources and tools the answer used (named, not quoted)."""
        return {
            "license_id": self.license_id or None,
            "meter_tx": self.meter_tx,
            "record_id": self.record.get("record_id"),
            "record_tx": self.record.get("tx"),
            "record_error": self.record_error,
            "record": self.record,
            "paid_sources": self.paid_sources,
            "sources": [
                {name: getattr(s, name) for name in SOURCE_FIELDS} for s in self.answer.sources
            ],
            "tool_calls": [
                {name: getattr(c, name) for name in TOOL_CALL_FIELDS}
                for c in self.answer.tool_calls
            ],
            "guard": self.guard,
        }


class AgentServer:
    """The OpenAI-compatible front of one agent; calls are answered one at a time."""

    def __init__(
        self,
        agent: Agent,
        protocol: Protocol,
        meter: Signer,
        *,
        chain_id: int | None = None,
        log: Callable[[str], None] = lambda _m: None,
        revoked: RevokedKeys | None = None,
        max_body: int = MAX_BODY,
        max_pending: int = MAX_PENDING,
    ) -> None:
        """Serve ``agent`` (it is the server's from now on: its vault search opens
        private text only as the spec's ``serve`` section allows). ``revoked`` defaults
        to the revoked keys beside the agent in its home. At most ``max_pending`` calls,
        streamed or not, are in flight at once (each holds a thread while it waits for
        the one model); the next is refused at once (:class:`AgentBusy`, HTTP 503)."""
        if max_pending < 1:
            raise UsageError("max_pending must be at least 1")
        if agent.spec.asset_id is None:
            raise AgentError(
                f"agent {agent.spec.name!r} is not published",
                hint=f"Run 'sahara agent publish {agent.spec.name} --price-per-call X' first.",
            )
        self.agent = agent
        self.name = agent.spec.name
        self.asset_id: int = agent.spec.asset_id
        self.protocol = protocol
        self.meter = meter
        self.chain_id = chain_id if chain_id is not None else protocol.node.chain_id()
        self.log = log
        asset = protocol.asset(self.asset_id)
        if asset.kind != "agent":
            raise AgentError(f"asset {self.asset_id} is a {asset.kind}, not an agent")
        if asset.meter.lower() != meter.address.lower():
            raise NotPermitted(
                f"{meter.address} is not the meter of agent asset {self.asset_id} "
                f"({asset.meter} is)",
                hint="Serve with the ID that published the agent, or set it as the meter.",
            )
        self.owner = asset.owner
        self.created = asset.created
        self._lock = threading.Lock()
        self._exists: dict[int, bool] = {}
        self._licenses: dict[str, list[int]] = {}
        self.max_body = max_body
        self.max_pending = max_pending
        self._pending = threading.BoundedSemaphore(max_pending)
        if revoked is None and agent.ctx is not None:
            from sahara_cli.agent.spec import AgentStore

            revoked = RevokedKeys(AgentStore(agent.ctx.home_root).dir(self.name))
        self.revoked = revoked
        self._opened: dict[str, str] = {}  # private items opened for the current call
        if agent.ctx is not None:
            agent.ctx.may_open = self.may_open

    # -- what callers may be given ----------------------------------------------------

    def may_open(self, item: Item) -> bool:
        """Whether a served answer may use the private text of ``item``: its name is in
        the spec's ``serve.private_scopes``, and the agent's ID owns it (its asset, or
        its unregistered data) or holds a valid Partnership license of its asset. Any
        other license (API, Full-Access, Long-term) is for the ID's own use, not for
        reselling through answers. A chain that cannot be read says no."""
        scopes = self.agent.spec.serve.private_scopes
        if not any(fnmatch.fnmatchcase(item.name, pattern) for pattern in scopes):
            return False
        me = self.meter.address.lower()
        allowed = False
        if item.asset_id is None:
            allowed = item.owner.lower() == me
        else:
            try:
                owner = self.protocol.asset(item.asset_id).owner.lower()
                allowed = owner == me or (
                    self.protocol.has_access(item.asset_id, self.meter.address, "partnership")
                    # valid by the wall clock too, not only by the last block's time
                    and self.protocol.access_until(item.asset_id, self.meter.address, "partnership")
                    > time.time()
                )
            except SaharaError as exc:
                self.log(f"private item {item.name} left out: {exc.message}")
        if allowed:
            self._opened[item.cid] = item.name
        return allowed

    def _guard(self, turn: Turn) -> QuoteGuard:
        """A quote guard over the private passages the prompt of ``turn`` holds: the
        opened sources and the vault search results of its tool calls, the chunks of
        each item together (a quote may span two of them)."""
        from sahara_cli.agent.servers.quote_guard import QuoteGuard

        chunks: dict[str, list[str]] = {}  # each item's chunks, read alone and joined

        def add(cid: str, text: str) -> None:
            if text not in chunks.setdefault(cid, []):
                chunks[cid].append(text)

        for source in turn.sources:
            if source.cid in self._opened:
                add(source.cid, source.text)
        for call in turn.calls:
            output = call.output
            if call.ok and isinstance(output, Mapping) and isinstance(output.get("hits"), list):
                for hit in output["hits"]:
                    if (
                        isinstance(hit, Mapping)
                        and hit.get("cid") in self._opened
                        and hit.get("text")
                    ):
                        add(str(hit["cid"]), str(hit["text"]))
        return QuoteGuard(list(chunks.values()), self.agent.spec.serve.max_quote_words)

    # -- the steps of a call ----------------------------------------------------------

    def authenticate(self, authorization: str | None) -> ApiKey:
        token = ""
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        return verify_api_key(
            token, agent_asset=self.asset_id, chain_id=self.chain_id, revoked=self.revoked
        )

    def close(self) -> None:
        """Let go of the revoked keys' file (the agent is closed by its opener)."""
        if self.revoked is not None:
            self.revoked.close()

    def revoke(self, key: ApiKey) -> bool:
        """Revoke the (authenticated) ``key``; False when it was revoked already."""
        if self.revoked is None:
            raise AgentError("this server keeps no revoked keys (the agent has no home)")
        return self.revoked.revoke(key.key_id, address=key.address, expires=key.expires)

    def admit(self) -> None:
        """Take one of the ``max_pending`` places for a call (give it back with
        :meth:`release`); :class:`AgentBusy` when all are taken."""
        if not self._pending.acquire(blocking=False):
            raise AgentBusy(
                f"agent {self.name!r} has {self.max_pending} calls in flight; try again shortly"
            )

    def release(self) -> None:
        self._pending.release()

    def may_revoke(self, address: str) -> None:
        """Whether ``address`` may add its keys to the revoked list: the owner, or an
        address that holds or held an API license of this agent (with calls left or
        not, so a caller whose calls ran out can still end a leaked key);
        :class:`AgentNoLicense` otherwise. Rows are pruned once their key expires."""
        if address.lower() == self.owner.lower():
            return
        if self._licenses.get(address):
            return
        if not self.protocol.api_licenses(address, self.asset_id, with_calls=False):
            raise AgentNoLicense(
                f"{address} never held an API license of agent {self.name!r} "
                f"(asset {self.asset_id}), so it has no key here to revoke",
                details={"asset": self.asset_id},
            )

    def license_for(self, address: str) -> License | None:
        """The caller's oldest API license with calls left; None for the agent's owner."""
        if address.lower() == self.owner.lower():
            return None
        for license_id in self._licenses.get(address, []):
            lic = self.protocol.get_license(license_id)
            if lic.calls > 0:
                return lic
        found = self.protocol.api_licenses(address, self.asset_id)
        self._licenses[address] = [lic.id for lic in found]
        if not found:
            raise AgentNoLicense(
                f"{address} holds no API license with calls left for agent {self.name!r} "
                f"(asset {self.asset_id})",
                details={"asset": self.asset_id},
            )
        return found[0]

    def _sources(self, turn: Turn) -> list[int]:
        """The first four source assets of the turn that exist on this chain."""
        from sahara_cli.errors import AssetNotFound

        out = []
        for asset_id in turn.asset_ids:
            if asset_id not in self._exists:
                try:
                    self.protocol.asset(asset_id)
                    self._exists[asset_id] = True
                except AssetNotFound:
                    self._exists[asset_id] = False
            if self._exists[asset_id] and asset_id != self.asset_id:
                out.append(asset_id)
            if len(out) == MAX_SOURCES:
                break
        return out

    def answer(
        self,
        key: ApiKey,
        messages: Sequence[Message],
        on_delta: Callable[[str], None] | None = None,
        on_metered: Callable[[], None] | None = None,
        *,
        sampling: Mapping[str, Any] | None = None,
    ) -> Served:
        """Answer one call (holding the server's one lock): license, recall and tools,
        the reply, then its record on chain, which for a caller's call also meters it
        (one transaction); only once that is mined does the caller get the reply
        (``on_metered`` is called just before it, then ``on_delta`` with each piece).
        The owner's calls are not metered: their reply streams as it comes and is
        recorded after it, best effort."""
        with self._lock:
            lic = self.license_for(key.address)
            started = time.perf_counter()
            # The owner's long-term memory and feedback stay out of served answers.
            self._opened = {}
            turn = self.agent.prepare(messages, sampling=sampling)
            guard = self._guard(turn)
            sources = self._sources(turn)
            license_id = lic.id if lic is not None else 0
            meter_tx: dict[str, Any] | None = None
            record_error: str | None = None
            if lic is None:
                if on_metered is not None:
                    on_metered()
                answer = self.agent.finish(turn, on_delta, guard=guard)
                answered = time.perf_counter()
                record_error = self._commit(answer, sources)
            else:
                held: list[str] = []  # the reply, given out once the call is paid for
                answer = self.agent.finish(
                    turn, held.append if on_delta is not None else None, guard=guard
                )
                answered = time.perf_counter()
                meter_tx = self._settle(key, answer, lic, sources)
                if on_metered is not None:
                    on_metered()
                if on_delta is not None:
                    for piece in held:
                        on_delta(piece)
            done = time.perf_counter()
        self.log(
            f"{key.address} license {license_id or '-'}: prepared and answered in "
            f"{answered - started:.2f} s, recorded{' and metered' if lic else ''} in "
            f"{done - answered:.2f} s (record {answer.record.get('record_id') or 'pending'})"
        )
        report = guard.report()
        if guard.redacted_spans:
            self.log(f"{key.address}: {report['reason']}")
        return Served(answer, license_id, meter_tx, answer.record, sources, record_error, report)

    def _settle(
        self, key: ApiKey, answer: Answer, lic: License, sources: list[int]
    ) -> dict[str, Any]:
        """Record ``answer`` and meter one call of ``lic`` in one transaction (the
        inference SAP's ``record``); returns that transaction.

        Refused (no call left on the license by now: refunded meanwhile, say): the
        answer is never given out and its local record is dropped,
        :class:`AgentNoLicense`. Any other failure (the node went away): the local
        record stays pending with the license and the call, and the error is raised;
        the answer is not given out either, since the call is not paid for."""
        from sahara_cli.agent.record import committed, send_record

        digest = answer.record["digest"]
        try:
            record_id, tx = send_record(
                self.protocol, self.meter, answer.record, lic.id, sources=sources, calls=1
            )
        except ProtocolReverted as exc:
            self._licenses.pop(key.address, None)
            if self.agent.records is not None:
                self.agent.records.discard(digest)
            raise AgentNoLicense(
                f"license {lic.id} of {key.address} could not be metered: {exc.message}",
                details={"asset": self.asset_id, "license": lic.id},
            ) from None
        except Exception as exc:
            reason = exc.message if isinstance(exc, SaharaError) else f"{type(exc).__name__}: {exc}"
            self.log(f"record {digest} not committed, kept pending: {reason}")
            self._pending_note(answer, {"license_id": lic.id, "calls": 1})
            if isinstance(exc, SaharaError):
                raise
            raise AgentError(f"the call could not be recorded and metered: {reason}") from exc
        done = committed(record_id, tx, lic.id, calls=1)
        answer.record.update(done)
        if self.agent.records is not None:
            self.agent.records.mark_committed(digest, done)
        return tx.to_dict()

    def _pending_note(self, answer: Answer, extra: dict[str, Any]) -> None:
        answer.record.update(extra)
        if self.agent.records is not None:
            with contextlib.suppress(SaharaError):
                self.agent.records.note(answer.record["digest"], extra)

    def _commit(self, answer: Answer, sources: list[int]) -> str | None:
        """Put the (unmetered) answer's record on chain; on failure the reason (logged),
        the local record left pending."""
        from sahara_cli.agent.record import commit_record

        digest = answer.record["digest"]
        try:
            committed = commit_record(self.protocol, self.meter, answer.record, sources=sources)
        except Exception as exc:  # the owner's answer goes out regardless
            reason = exc.message if isinstance(exc, SaharaError) else f"{type(exc).__name__}: {exc}"
            self.log(f"record {digest} not committed, kept pending: {reason}")
            self._pending_note(answer, {"license_id": 0})
            return reason
        answer.record.update(committed)
        if self.agent.records is not None:
            self.agent.records.mark_committed(digest, committed)
        return None

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The ASGI app of this server (:mod:`sahara_cli.agent.servers.openai_http`)."""
        from sahara_cli.agent.servers.openai_http import build_app

        return build_app(self)


# --- running it -----------------------------------------------------------------------------


def serve_agent(
    agent: Agent,
    host: str,
    port: int,
    *,
    protocol: Protocol,
    meter: Signer,
    chain_id: int | None = None,
    on_ready: Callable[[str], None] | None = None,
    log: Callable[[str], None] = lambda _m: None,
    max_body: int = MAX_BODY,
    max_pending: int = MAX_PENDING,
    rate_per_ip: float | None = DEFAULT_RATE_PER_IP,
) -> None:
    """Serve ``agent`` at ``http://host:port/v1`` until interrupted (Ctrl-C, SIGTERM),
    taking at most ``rate_per_ip`` requests a second from one address (None: no limit)."""
    import uvicorn

    from sahara_cli.agent.servers.limits import limited

    server = AgentServer(
        agent,
        protocol,
        meter,
        chain_id=chain_id,
        log=log,
        max_body=max_body,
        max_pending=max_pending,
    )
    app = limited(server.app(), rate_per_ip)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    web = uvicorn.Server(config)
    url = f"http://{host}:{port}/v1"

    async def run() -> None:
        import asyncio

        task = asyncio.ensure_future(web.serve())
        while not web.started and not task.done():
            await asyncio.sleep(0.02)
        if web.started and on_ready is not None:
            on_ready(url)
        await task

    import asyncio

    try:
        asyncio.run(run())
    finally:
        server.close()
    if not web.started:
        from sahara_cli.errors import AgentPortInUse

        raise AgentPortInUse(f"cannot listen on {host}:{port}")
