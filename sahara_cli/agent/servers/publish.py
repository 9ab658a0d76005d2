"""Publishing an agent: registered as an asset of kind ``agent`` (derived from its model's
asset when the model is registered), with an API license offered at a price per call,
so that ``sahara agent serve`` can sell its answers (:mod:`.openai_api`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sahara_cli.errors import NotPermitted, UsageError

if TYPE_CHECKING:
    from sahara_cli.agent.results import AgentPublished
    from sahara_cli.agent.spec import AgentSpec
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import Protocol


#: Default part of each call's revenue that flows to the model and the retrieved assets.
DEFAULT_UPSTREAM_BPS = 2000


def agent_content_id(spec: AgentSpec, owner: str) -> str:
    """The content id an agent is registered under: a raw CIDv1 of its spec (without
    the asset id) and its owner, so two owners of one template do not collide."""
    import hashlib

    from sahara_cli.agent.record import canonical_json
    from sahara_cli.vault.cid import CID

    document = {
        "agent": spec.model_dump(mode="json", exclude={"asset_id"}),
        "owner": owner.lower(),
    }
    return str(CID.raw(hashlib.sha256(canonical_json(document)).digest()))


def model_asset(home_root: Path, spec: AgentSpec, protocol: Protocol) -> int | None:
    """The asset id of the agent's model on this chain, if it is registered."""
    from sahara_cli.agent.runners.model_store import ModelStore
    from sahara_cli.errors import AssetNotFound

    entry = ModelStore(home_root).resolve(spec.model.name)
    if entry.asset_id is not None:
        try:
            if protocol.asset(entry.asset_id).cid == entry.cid:
                return entry.asset_id
        except AssetNotFound:
            pass
    return protocol.asset_by_cid(entry.cid) if entry.cid else None


def publish_agent(
    home_root: Path,
    agent: str | AgentSpec,
    protocol: Protocol,
    signer: Signer,
    *,
    price_per_call: int,
    upstream_bps: int = DEFAULT_UPSTREAM_BPS,
    meter: str | None = None,
    uri: str = "",
) -> AgentPublished:
    """Register the agent as an asset of kind ``agent`` (once per chain) and offer an
    API license at ``price_per_call`` wei.

    The agent's parent is its model's asset when the model is registered; then
    ``upstream_bps`` of every call's price flows to the model and the assets each answer
    retrieved (without a parent there is no upstream share and the owner keeps it all).
    ``meter`` (default: ``signer``) is the address allowed to meter calls: the ID that
    runs ``agent serve``. The asset id is saved in the agent's spec.
    """
    from sahara_cli.agent.results import AgentPublished
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.errors import AssetNotFound

    if price_per_call < 0:
        raise UsageError("the price per call cannot be negative")
    store = AgentStore(home_root)
    spec = store.load(agent) if isinstance(agent, str) else agent
    register_tx = meter_tx = None
    asset_id = spec.asset_id
    if asset_id is not None:
        try:
            if protocol.asset(asset_id).owner.lower() != signer.address.lower():
                raise NotPermitted(
                    f"agent {spec.name!r} is asset {asset_id}, owned by another ID",
                    hint="Publish with the ID that owns it (--id).",
                )
        except AssetNotFound:
            asset_id = None  # registered on another chain (a reset dev chain)
    parents: list[int] = []
    model = model_asset(home_root, spec, protocol)
    if model is not None:
        parents.append(model)
    if asset_id is None:
        cid = agent_content_id(spec, signer.address)
        existing = protocol.asset_by_cid(cid)
        if (
            existing is not None
            and protocol.asset(existing).owner.lower() == signer.address.lower()
        ):
            asset_id = existing
        else:
            commitment = _sha256(spec.model_dump_json(exclude={"asset_id"}).encode())
            asset_id, tx = protocol.register(
                signer,
                kind="agent",
                cid=cid,
                commitment=commitment,
                name=spec.name[:64],
                uri=uri,
                parents=parents,
                upstream_bps=upstream_bps if parents else 0,
            )
            register_tx = tx.transaction()
        store.save(spec.model_copy(update={"asset_id": asset_id}), overwrite=True)
    asset = protocol.asset(asset_id)
    wanted_meter = meter or signer.address
    if asset.meter.lower() != wanted_meter.lower():
        meter_tx = protocol.set_meter(signer, asset_id, wanted_meter).transaction()
    offer_id, offer_tx = protocol.offer(signer, asset_id, "api", price=price_per_call)
    return AgentPublished(
        agent=spec.name,
        owner=signer.address,
        asset_id=asset_id,
        model_asset_id=model,
        parents=asset.parents,
        upstream_bps=protocol.upstream_bps(asset_id),
        meter=wanted_meter,
        offer_id=offer_id,
        price_per_call_wei=price_per_call,
        register_tx=register_tx,
        meter_tx=meter_tx,
        offer_tx=offer_tx.transaction(),
    )


def _sha256(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).digest()


def publish(
    home_root: Path,
    name: str,
    protocol: Protocol,
    signer: Signer,
    *,
    price_per_call: str | None = None,
    upstream_bps: int = DEFAULT_UPSTREAM_BPS,
    meter: str | None = None,
) -> AgentPublished:
    """``sahara agent publish``: :func:`publish_agent` at ``price_per_call`` SAH (text such
    as ``0.001``; default: the spec's ``license.price_per_call``)."""
    from sahara_cli.agent.spec import AgentStore
    from sahara_cli.node.client import parse_sah

    spec = AgentStore(home_root).load(name)
    price_text = price_per_call or spec.license.price_per_call
    if price_text is None:
        raise UsageError(
            "no price per call", hint="Pass --price-per-call, e.g. --price-per-call 0.001."
        )
    try:
        price = parse_sah(price_text)
    except UsageError as exc:
        raise UsageError(f"--price-per-call: {exc.message}", hint=exc.hint) from None
    return publish_agent(
        home_root,
        spec,
        protocol,
        signer,
        price_per_call=price,
        upstream_bps=upstream_bps,
        meter=meter,
    )
