"""Unit tests of the protocol contracts, run from their committed runtime bytecode.

Each contract's runtime bytecode from ``<Name>.json`` is placed at its fixed address from
``deployment.json`` in a fresh titanoboa environment, so these tests exercise exactly
what genesis deploys. Every test runs inside an anchor that rolls the chain back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boa
import pytest
from eth_utils import keccak

from sahara_cli.protocol.artifacts import CONTRACTS_DIR, NAMES, addresses, artifact

ZERO = "0x" + "00" * 20
NO_TERMS = b"\x00" * 32
TERMS = b"\x7e" * 32
BPS = 10_000
ANY, API, FULL, LONG_TERM, PARTNERSHIP = 0, 1, 2, 3, 4
ROLE_OWNER, ROLE_CONTRIBUTOR = 1, 2
DAY = 86_400
ETHER = 10**18
NON_TRANSFERABLE = "receipts are non-transferable"
ONLY_OWNER = "only the asset owner can do this"

pytest_plugins = ("tests.unit.protocol_fixtures",)  # deployed, p, accts

_cids = itertools.count(1)


@cache
def _deployer(name: str) -> Any:
    """The contract's ABI wrapper, compiled once per session (the code comes from JSON)."""
    return boa.load_partial(str(CONTRACTS_DIR / f"{name}.vy"))


@dataclass
class Protocol:
    """The contracts at their genesis addresses, plus funded test accounts."""

    env: Any
    registry: Any
    receipts: Any
    licensing: Any
    attribution: Any
    provenance: Any
    accounts: list[str] = field(default_factory=list)

    def register(
        self,
        owner: str,
        *,
        kind: int = 0,
        parents: list[int] | tuple[int, ...] = (),
        contributors: list[tuple[str, int]] | tuple[tuple[str, int], ...] = (),
        upstream_bps: int = 0,
        cid: str | None = None,
        name: str = "asset",
        uri: str = "",
    ) -> int:
        """Register an asset as ``owner``; a fresh CID unless one is given."""
        cid = cid if cid is not None else f"bafy{next(_cids)}"
        with self.env.prank(owner):
            return int(
                self.registry.register(
                    kind,
                    cid,
                    b"\x01" * 32,
                    name,
                    uri,
                    list(parents),
                    list(contributors),
                    upstream_bps,
                )
            )

    def offer(
        self,
        owner: str,
        asset: int,
        kind: int,
        *,
        price: int = 0,
        duration: int = 0,
        terms: bytes = NO_TERMS,
        share_bps: int = 0,
        partner: str = ZERO,
        valid_until: int = 0,
    ) -> int:
        with self.env.prank(owner):
            return int(
                self.licensing.offer(
                    asset, kind, price, duration, terms, share_bps, partner, valid_until
                )
            )

    def partnership(self, owner: str, asset: int, **kwargs: Any) -> int:
        kwargs.setdefault("terms", TERMS)
        kwargs.setdefault("share_bps", 2_500)
        return self.offer(owner, asset, PARTNERSHIP, **kwargs)

    def buy(self, buyer: str, offer_id: int, calls: int = 0, value: int | None = None) -> int:
        """Buy from an offer, paying its exact price unless ``value`` says otherwise."""
        if value is None:
            price = self.licensing.getOffer(offer_id).price
            value = price * calls if calls else price
        with self.env.prank(buyer):
            return int(self.licensing.buy(offer_id, calls, value=value))

    def accept(self, partner: str, offer_id: int, value: int | None = None) -> int:
        if value is None:
            value = self.licensing.getOffer(offer_id).price
        with self.env.prank(partner):
            return int(self.licensing.accept(offer_id, value=value))

    def pay(self, payer: str, asset: int, amount: int) -> None:
        with self.env.prank(payer):
            self.attribution.pay(asset, value=amount)

    def balance(self, account: str) -> int:
        return int(self.env.get_balance(account))


def deploy(env: Any, n_accounts: int = 8) -> Protocol:
    """Place the committed runtime bytecode at the manifest addresses in ``env``.

    ``env`` must be the active boa environment (``boa.swap_env``).
    """
    contracts = {}
    for name, address in addresses().items():
        env.set_code(address, bytes.fromhex(artifact(name)["bytecode_runtime"][2:]))
        contracts[name] = _deployer(name).at(address)
    accounts = [env.generate_address(f"account{i}") for i in range(n_accounts)]
    for account in accounts:
        env.set_balance(account, 10**6 * ETHER)
    return Protocol(
        env=env,
        registry=contracts["AssetRegistry"],
        receipts=contracts["Receipts"],
        licensing=contracts["Licensing"],
        attribution=contracts["Attribution"],
        provenance=contracts["Provenance"],
        accounts=accounts,
    )


def events(contract: Any, name: str) -> list[Any]:
    """Logs named ``name`` from ``contract``'s last call (all contracts it touched)."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


# --------------------------------------------------------------------------- set-up


def test_every_contract_is_at_its_manifest_address(p: Protocol) -> None:
    """The environment runs the committed runtime bytecode at each manifest address."""
    assert set(addresses()) == set(NAMES)
    for name, address in addresses().items():
        code = bytes(p.env.get_code(address))
        assert code.hex() == artifact(name)["bytecode_runtime"][2:]


# --------------------------------------------------------------------------- AssetRegistry


def test_register_records_the_asset_and_logs_it(p: Protocol, accts: list[str]) -> None:
    """register stores every field, makes the sender owner and meter, and logs Registered."""
    owner = accts[0]
    now = p.env.timestamp
    with p.env.prank(owner):
        asset = p.registry.register(2, "bafyX", b"\x09" * 32, "agent", "ipfs://m", [], [], 0)
    assert asset == 1
    [logged] = events(p.registry, "Registered")
    assert (logged.asset, logged.owner, logged.kind, logged.cid) == (1, owner, 2, "bafyX")
    assert (logged.name, logged.uri, logged.parents) == ("agent", "ipfs://m", [])
    assert logged.commitment == b"\x09" * 32
    got = p.registry.getAsset(asset)
    assert got.owner == owner
    assert got.kind == 2
    assert got.cid == "bafyX"
    assert got.commitment == b"\x09" * 32
    assert got.name == "agent"
    assert got.uri == "ipfs://m"
    assert got.meter == owner
    assert got.created == now
    assert list(got.parents) == []
    assert p.registry.count() == 1
    assert p.registry.cidAsset(keccak(text="bafyX")) == 1
    assert p.registry.exists(1)
    assert not p.registry.exists(2)
    assert p.registry.ownerOf(1) == owner
    assert p.registry.meterOf(1) == owner


def test_register_numbers_assets_in_order_and_keeps_parents(p: Protocol, accts: list[str]) -> None:
    """Ids count up from 1 and parentsOf returns the parents as given."""
    a = p.register(accts[0])
    b = p.register(accts[1])
    c = p.register(accts[2], parents=[b, a], upstream_bps=1_000)
    assert (a, b, c) == (1, 2, 3)
    assert list(p.registry.parentsOf(c)) == [b, a]
    assert p.registry.count() == 3


@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_register_accepts_every_asset_kind(p: Protocol, accts: list[str], kind: int) -> None:
    """Kinds 0..3 (dataset, model, agent, compute) register."""
    asset = p.register(accts[0], kind=kind)
    assert p.registry.getAsset(asset).kind == kind


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kind": 4}, "unknown asset kind"),
        ({"cid": ""}, "content id is empty"),
        ({"name": ""}, "asset name is empty"),
        ({"parents": [0]}, "unknown parent asset"),
        ({"parents": [3]}, "unknown parent asset"),
        ({"parents": [1, 1]}, "parent listed twice"),
        ({"parents": [1, 2, 1]}, "parent listed twice"),
        ({"parents": [1], "upstream_bps": 10_001}, "upstream share is over 10000 bps"),
        ({"upstream_bps": 1}, "an upstream share needs a parent asset"),
    ],
)
def test_register_rejects_bad_input(
    p: Protocol, accts: list[str], overrides: dict[str, Any], reason: str
) -> None:
    """Each malformed registration reverts with its reason and registers nothing."""
    p.register(accts[0])
    p.register(accts[0])
    with boa.reverts(reason):
        p.register(accts[1], **overrides)
    assert p.registry.count() == 2


def test_register_rejects_a_reused_content_id(p: Protocol, accts: list[str]) -> None:
    """A CID registers once, whoever tries again."""
    p.register(accts[0], cid="bafySame")
    with boa.reverts("content id is already registered"):
        p.register(accts[1], cid="bafySame")


@pytest.mark.parametrize(
    ("weights", "reason"),
    [
        ([7_000, 2_999], "contributor weights must sum to 10000 bps"),
        ([7_000, 3_001], "contributor weights must sum to 10000 bps"),
        ([10_000, 0], "contributor weight is zero"),
    ],
)
def test_register_rejects_weights_not_summing_to_10000(
    p: Protocol, accts: list[str], weights: list[int], reason: str
) -> None:
    """Contributor weights must be positive and sum to exactly 10,000 bps."""
    contributors = list(zip(accts[:2], weights, strict=True))
    with boa.reverts(reason):
        p.register(accts[0], contributors=contributors)
    assert p.registry.count() == 0
    assert p.receipts.totalSupply() == 0


def test_register_rejects_a_duplicate_or_zero_contributor(p: Protocol, accts: list[str]) -> None:
    """The same account twice, or the zero address, is refused."""
    with boa.reverts("contributor listed twice"):
        p.register(accts[0], contributors=[(accts[1], 5_000), (accts[1], 5_000)])
    with boa.reverts("contributor is the zero address"):
        p.register(accts[0], contributors=[(accts[1], 5_000), (ZERO, 5_000)])
    assert p.registry.count() == 0


def test_set_metadata_is_owner_only(p: Protocol, accts: list[str]) -> None:
    """The owner updates the URI (logged); others and unknown assets revert."""
    owner, other = accts[0], accts[1]
    asset = p.register(owner, uri="old")
    with p.env.prank(other), boa.reverts(ONLY_OWNER):
        p.registry.setMetadata(asset, "evil")
    with p.env.prank(owner), boa.reverts("unknown asset"):
        p.registry.setMetadata(asset + 1, "x")
    with p.env.prank(owner):
        p.registry.setMetadata(asset, "ipfs://new")
    [logged] = events(p.registry, "MetadataUpdated")
    assert (logged.asset, logged.uri) == (asset, "ipfs://new")
    assert p.registry.getAsset(asset).uri == "ipfs://new"


def test_set_meter_is_owner_only_and_not_zero(p: Protocol, accts: list[str]) -> None:
    """The owner names the meter (logged); others, zero and unknown assets revert."""
    owner, other, meter = accts[0], accts[1], accts[2]
    asset = p.register(owner)
    with p.env.prank(other), boa.reverts(ONLY_OWNER):
        p.registry.setMeter(asset, other)
    with p.env.prank(owner), boa.reverts("meter is the zero address"):
        p.registry.setMeter(asset, ZERO)
    with p.env.prank(owner), boa.reverts("unknown asset"):
        p.registry.setMeter(asset + 1, meter)
    with p.env.prank(owner):
        p.registry.setMeter(asset, meter)
    [logged] = events(p.registry, "MeterChanged")
    assert (logged.asset, logged.meter) == (asset, meter)
    assert p.registry.meterOf(asset) == meter


@pytest.mark.parametrize("view", ["getAsset", "ownerOf", "meterOf", "parentsOf"])
def test_registry_views_reject_unknown_assets(p: Protocol, accts: list[str], view: str) -> None:
    """Views of asset 0 or a never-registered id revert with "unknown asset"."""
    p.register(accts[0])
    for asset in (0, 2):
        with boa.reverts("unknown asset"):
            getattr(p.registry, view)(asset)


# --------------------------------------------------------------------------- Receipts


def test_registration_mints_locked_receipts(p: Protocol, accts: list[str]) -> None:
    """Each contributor gets a receipt with its weight; the owner's has role OWNER."""
    owner, dev = accts[0], accts[1]
    with p.env.prank(owner):
        p.registry.register(
            0, "bafyR", b"\x01" * 32, "n", "", [], [(owner, 7_000), (dev, 3_000)], 0
        )
    transfers = events(p.registry, "Transfer")
    assert [(t.sender, t.receiver, t.token_id) for t in transfers] == [
        (ZERO, owner, 1),
        (ZERO, dev, 2),
    ]
    assert [log.token_id for log in events(p.registry, "Locked")] == [1, 2]
    first, second = p.receipts.receipts(1), p.receipts.receipts(2)
    assert (first.holder, first.asset, first.role, first.share_bps) == (owner, 1, ROLE_OWNER, 7_000)
    assert (second.holder, second.asset, second.role, second.share_bps) == (
        dev,
        1,
        ROLE_CONTRIBUTOR,
        3_000,
    )
    assert first.minted == p.env.timestamp
    assert p.receipts.receiptOf(1, owner) == 1
    assert p.receipts.receiptOf(1, dev) == 2
    assert p.receipts.totalSupply() == 2
    assert p.receipts.balanceOf(owner) == 1
    assert p.receipts.reputation(owner) == 7_000
    assert p.receipts.reputation(dev) == 3_000
    assert p.receipts.ownerOf(2) == dev
    assert p.receipts.locked(1) is True
    assert p.receipts.locked(2) is True


def test_an_unlisted_owner_gets_a_zero_share_owner_receipt(p: Protocol, accts: list[str]) -> None:
    """An owner who is not a contributor still holds an OWNER receipt, with share 0."""
    owner, dev = accts[0], accts[1]
    asset = p.register(owner, contributors=[(dev, BPS)])
    token = p.receipts.receiptOf(asset, owner)
    assert token != 0
    receipt = p.receipts.receipts(token)
    assert (receipt.holder, receipt.role, receipt.share_bps) == (owner, ROLE_OWNER, 0)
    assert p.receipts.reputation(owner) == 0
    assert p.receipts.reputation(dev) == BPS
    assert p.receipts.balanceOf(owner) == 1


def test_an_empty_contributor_list_gives_the_owner_everything(
    p: Protocol, accts: list[str]
) -> None:
    """No contributors means the owner alone at 10,000 bps."""
    owner = accts[0]
    asset = p.register(owner)
    assert [tuple(c) for c in p.attribution.contributorsOf(asset)] == [(owner, BPS)]
    assert p.receipts.reputation(owner) == BPS
    assert p.receipts.totalSupply() == 1


def test_reputation_sums_receipts_across_assets(p: Protocol, accts: list[str]) -> None:
    """An address's reputation is the sum of its shares over all assets."""
    owner, dev = accts[0], accts[1]
    p.register(owner, contributors=[(owner, 6_000), (dev, 4_000)])
    p.register(accts[2], contributors=[(accts[2], 2_500), (dev, 7_500)])
    assert p.receipts.reputation(dev) == 11_500
    assert p.receipts.balanceOf(dev) == 2


def test_receipt_metadata_and_interfaces(p: Protocol) -> None:
    """Name, symbol and ERC-165 answers: ERC-165, ERC-721 and ERC-5192 only."""
    assert p.receipts.name() == "Sahara Receipts"
    assert p.receipts.symbol() == "SRCPT"
    for interface in ("01ffc9a7", "80ac58cd", "b45a3c0e"):
        assert p.receipts.supportsInterface(bytes.fromhex(interface)) is True
    for interface in ("ffffffff", "5b5e139f", "780e9d63", "00000000"):
        assert p.receipts.supportsInterface(bytes.fromhex(interface)) is False


def test_receipts_cannot_be_transferred_or_approved(p: Protocol, accts: list[str]) -> None:
    """Every ERC-721 transfer and approval entry point reverts, even for the holder."""
    holder, other = accts[0], accts[1]
    p.register(holder)
    with p.env.prank(holder):
        with boa.reverts(NON_TRANSFERABLE):
            p.receipts.transferFrom(holder, other, 1)
        with boa.reverts(NON_TRANSFERABLE):
            p.receipts.safeTransferFrom(holder, other, 1)
        with boa.reverts(NON_TRANSFERABLE):
            p.receipts.safeTransferFrom(holder, other, 1, b"data")
        with boa.reverts(NON_TRANSFERABLE):
            p.receipts.approve(other, 1)
        with boa.reverts(NON_TRANSFERABLE):
            p.receipts.setApprovalForAll(other, True)
    assert p.receipts.ownerOf(1) == holder
    assert p.receipts.getApproved(1) == ZERO
    assert p.receipts.isApprovedForAll(holder, other) is False


@pytest.mark.parametrize("view", ["ownerOf", "locked", "getApproved"])
def test_receipt_views_reject_unknown_receipts(p: Protocol, accts: list[str], view: str) -> None:
    """Token 0 and unminted tokens revert with "unknown receipt"."""
    p.register(accts[0])
    for token in (0, 2):
        with boa.reverts("unknown receipt"):
            getattr(p.receipts, view)(token)


def test_only_attribution_mints_or_changes_shares(p: Protocol, accts: list[str]) -> None:
    """mint and setShare refuse every caller but the Attribution contract."""
    p.register(accts[0])
    with p.env.prank(accts[0]):
        with boa.reverts("only the attribution contract mints receipts"):
            p.receipts.mint(accts[0], 1, ROLE_OWNER, BPS)
        with boa.reverts("only the attribution contract changes shares"):
            p.receipts.setShare(1, accts[0], 0)
    with (
        p.env.prank(addresses()["AssetRegistry"]),
        boa.reverts("only the attribution contract mints receipts"),
    ):
        p.receipts.mint(accts[0], 1, ROLE_OWNER, BPS)
    assert p.receipts.reputation(accts[0]) == BPS


def test_receipts_mint_and_set_share_checks(p: Protocol, accts: list[str]) -> None:
    """As Attribution: no zero holder, no share change on a missing receipt, re-mint updates."""
    attribution = addresses()["Attribution"]
    holder = accts[3]
    with p.env.prank(attribution):
        with boa.reverts("receipt holder is the zero address"):
            p.receipts.mint(ZERO, 1, ROLE_OWNER, 1)
        with boa.reverts("unknown receipt"):
            p.receipts.setShare(1, holder, 5)
        token = p.receipts.mint(holder, 1, ROLE_CONTRIBUTOR, 100)
        again = p.receipts.mint(holder, 1, ROLE_CONTRIBUTOR, 40)
        [changed] = events(p.receipts, "ShareChanged")
        p.receipts.setShare(1, holder, 70)
    assert token == again == 1
    assert (changed.token_id, changed.share_bps) == (1, 40)
    assert p.receipts.totalSupply() == 1
    assert p.receipts.balanceOf(holder) == 1
    assert p.receipts.reputation(holder) == 70
    assert p.receipts.receipts(1).share_bps == 70


# --------------------------------------------------------------------------- Attribution


def test_setup_is_registry_only(p: Protocol, accts: list[str]) -> None:
    """Only the registry may record contributors."""
    with p.env.prank(accts[0]), boa.reverts("only the registry sets contributors"):
        p.attribution.setup(1, accts[0], [(accts[0], BPS)], 0, [])


def test_setup_checks_upstream_share(p: Protocol, accts: list[str]) -> None:
    """Attribution itself refuses an upstream share over 10,000 bps."""
    with p.env.prank(addresses()["AssetRegistry"]), boa.reverts("upstream share is over 10000 bps"):
        p.attribution.setup(1, accts[0], [], 10_001, [])


def test_registration_logs_contributors(p: Protocol, accts: list[str]) -> None:
    """ContributorsSet carries the contributor list and the upstream share."""
    a = p.register(accts[0])
    with p.env.prank(accts[1]):
        p.registry.register(
            0, "bafyC", b"\x01" * 32, "n", "", [a], [(accts[1], 9_000), (accts[2], 1_000)], 1_500
        )
    [logged] = events(p.registry, "ContributorsSet")
    assert logged.asset == 2
    assert [tuple(c) for c in logged.contributors] == [(accts[1], 9_000), (accts[2], 1_000)]
    assert logged.upstream_bps == 1_500
    assert p.attribution.upstreamOf(2) == 1_500


def test_pay_splits_by_weight_and_logs(p: Protocol, accts: list[str]) -> None:
    """A payment is credited by weight at once, with Paid and Credited events."""
    owner, dev, payer = accts[0], accts[1], accts[5]
    asset = p.register(owner, contributors=[(owner, 7_000), (dev, 3_000)])
    p.pay(payer, asset, 1_000)
    [paid] = events(p.attribution, "Paid")
    assert (paid.asset, paid.payer, paid.amount) == (asset, payer, 1_000)
    credited = [(c.asset, c.account, c.amount) for c in events(p.attribution, "Credited")]
    assert credited == [(asset, owner, 700), (asset, dev, 300)]
    assert p.attribution.claimable(owner) == 700
    assert p.attribution.claimable(dev) == 300
    assert p.attribution.received(asset) == 1_000
    assert p.attribution.totalPaid() == 1_000
    assert p.balance(p.attribution.address) == 1_000


def test_pay_gives_rounding_dust_to_the_owner(p: Protocol, accts: list[str]) -> None:
    """Shares round down and the remainder goes to the owner, even an unlisted one."""
    owner, x, y, z = accts[0], accts[1], accts[2], accts[3]
    asset = p.register(owner, contributors=[(x, 3_333), (y, 3_333), (z, 3_334)])
    p.pay(accts[5], asset, 10)
    assert [p.attribution.claimable(a) for a in (x, y, z)] == [3, 3, 3]
    assert p.attribution.claimable(owner) == 1
    p.pay(accts[5], asset, 1)  # every share rounds to zero
    assert [c.account for c in events(p.attribution, "Credited")] == [owner]
    assert p.attribution.claimable(owner) == 2


def test_pay_sends_the_upstream_share_equally_to_parents(p: Protocol, accts: list[str]) -> None:
    """upstream_bps of a payment is split equally among parents, the rest stays local."""
    a = p.register(accts[0])
    b = p.register(accts[1])
    child = p.register(accts[2], parents=[a, b], upstream_bps=5_000)
    p.pay(accts[5], child, 1_001)
    # 1001 * 5000 // 10000 = 500, // 2 parents = 250 each; the child keeps 1001 - 500.
    assert p.attribution.claimable(accts[0]) == 250
    assert p.attribution.claimable(accts[1]) == 250
    assert p.attribution.claimable(accts[2]) == 501
    assert (p.attribution.received(a), p.attribution.received(b)) == (250, 250)
    assert p.attribution.received(child) == 1_001


def test_upstream_too_small_to_split_stays_local(p: Protocol, accts: list[str]) -> None:
    """When each parent's part rounds to zero, nothing leaves the asset."""
    parents = [p.register(accts[i]) for i in range(3)]
    child = p.register(accts[3], parents=parents, upstream_bps=100)
    p.pay(accts[5], child, 299)  # 299 * 100 // 10000 = 2, // 3 = 0
    assert p.attribution.claimable(accts[3]) == 299
    assert all(p.attribution.received(a) == 0 for a in parents)


def test_upstream_recursion_stops_at_depth_three(p: Protocol, accts: list[str]) -> None:
    """With a full upstream share on a 5-chain, the great-grandparent keeps it all."""
    chain = [p.register(accts[0])]
    for i in range(1, 5):
        chain.append(p.register(accts[i], parents=[chain[-1]], upstream_bps=BPS))
    p.pay(accts[5], chain[-1], 1_000)
    # Depth 0 (asset 5) .. depth 3 (asset 2) all pass it on, asset 2 at depth 3 keeps it.
    assert [p.attribution.claimable(accts[i]) for i in range(5)] == [0, 1_000, 0, 0, 0]
    assert [p.attribution.received(a) for a in chain] == [0, 1_000, 1_000, 1_000, 1_000]


def test_a_diamond_credits_a_shared_ancestor_through_both_paths(
    p: Protocol, accts: list[str]
) -> None:
    """A root reached by two parents is credited once per path."""
    root = p.register(accts[0])
    left = p.register(accts[1], parents=[root], upstream_bps=BPS)
    right = p.register(accts[2], parents=[root], upstream_bps=BPS)
    child = p.register(accts[3], parents=[left, right], upstream_bps=BPS)
    p.pay(accts[5], child, 1_000)
    assert p.attribution.claimable(accts[0]) == 1_000
    assert p.attribution.received(root) == 1_000


def test_the_widest_graph_fits_the_work_bound(p: Protocol, accts: list[str]) -> None:
    """Four parents at every level gives the full 85 work items; depth 3 keeps its part."""
    base = [p.register(accts[0]) for _ in range(4)]
    level = base
    for owner in (accts[1], accts[2], accts[3]):
        level = [p.register(owner, parents=level, upstream_bps=BPS) for _ in range(4)]
    top = p.register(accts[4], parents=level, upstream_bps=BPS)
    p.pay(accts[5], top, 64_000)
    # 64 work items of 1,000 wei reach the first derived level (depth 3) and stop there.
    assert len(events(p.attribution, "Credited")) == 64
    assert p.attribution.claimable(accts[1]) == 64_000
    assert [p.attribution.claimable(accts[i]) for i in (0, 2, 3, 4)] == [0, 0, 0, 0]
    assert [p.attribution.received(a) for a in base] == [0, 0, 0, 0]
    assert p.attribution.received(base[-1] + 1) == 16_000


def test_pay_rejects_unknown_assets_and_zero(p: Protocol, accts: list[str]) -> None:
    """Paying into no asset, or paying nothing, reverts."""
    asset = p.register(accts[0])
    with boa.reverts("unknown asset"):
        p.pay(accts[5], asset + 1, 1)
    with boa.reverts("unknown asset"):
        p.pay(accts[5], 0, 1)
    with boa.reverts("payment is zero"):
        p.pay(accts[5], asset, 0)
    assert p.attribution.totalPaid() == 0


def test_claim_sends_everything_credited(p: Protocol, accts: list[str]) -> None:
    """claim pays out the whole claimable balance once and logs Claimed."""
    owner, dev = accts[0], accts[1]
    asset = p.register(owner, contributors=[(owner, 4_000), (dev, 6_000)])
    p.pay(accts[5], asset, 10 * ETHER)
    before = p.balance(dev)
    with p.env.prank(dev):
        assert p.attribution.claim() == 6 * ETHER
        [logged] = events(p.attribution, "Claimed")
        with boa.reverts("nothing to claim"):
            p.attribution.claim()
    assert (logged.account, logged.amount) == (dev, 6 * ETHER)
    assert p.balance(dev) - before == 6 * ETHER
    assert p.attribution.claimable(dev) == 0
    assert p.attribution.claimed(dev) == 6 * ETHER
    assert p.attribution.totalClaimed() == 6 * ETHER
    assert p.balance(p.attribution.address) == 4 * ETHER
    assert p.attribution.claimable(owner) == 4 * ETHER


def test_claim_with_nothing_credited_reverts(p: Protocol, accts: list[str]) -> None:
    """An account that was never credited cannot claim."""
    with p.env.prank(accts[0]), boa.reverts("nothing to claim"):
        p.attribution.claim()


def test_add_contributor_moves_weight_and_reputation(p: Protocol, accts: list[str]) -> None:
    """The owner gives weight from its own: shares, receipts and reputation follow."""
    owner, dev, new = accts[0], accts[1], accts[2]
    asset = p.register(owner, contributors=[(owner, 7_000), (dev, 3_000)])
    p.pay(accts[5], asset, 1_000)
    with p.env.prank(owner):
        p.attribution.addContributor(asset, new, 2_000)
    [logged] = events(p.attribution, "ContributorsSet")
    expected = [(owner, 5_000), (dev, 3_000), (new, 2_000)]
    assert [tuple(c) for c in logged.contributors] == expected
    assert [tuple(c) for c in p.attribution.contributorsOf(asset)] == expected
    assert p.receipts.reputation(owner) == 5_000
    assert p.receipts.reputation(new) == 2_000
    token = p.receipts.receiptOf(asset, new)
    assert p.receipts.receipts(token).role == ROLE_CONTRIBUTOR
    assert p.receipts.ownerOf(token) == new
    # Revenue already credited stays; new revenue follows the new weights.
    assert p.attribution.claimable(new) == 0
    p.pay(accts[5], asset, 1_000)
    assert p.attribution.claimable(owner) == 700 + 500
    assert p.attribution.claimable(new) == 200
    # Adding more to an existing contributor tops up its one receipt.
    with p.env.prank(owner):
        p.attribution.addContributor(asset, dev, 5_000)
    assert p.receipts.receiptOf(asset, dev) == 2
    assert p.receipts.reputation(dev) == 8_000
    assert p.receipts.reputation(owner) == 0
    assert p.receipts.balanceOf(dev) == 1
    assert sum(c.weight_bps for c in p.attribution.contributorsOf(asset)) == BPS


def test_add_contributor_checks(p: Protocol, accts: list[str]) -> None:
    """Owner only, no zero or owner account, positive weight, within the owner's weight."""
    owner, dev, other = accts[0], accts[1], accts[2]
    asset = p.register(owner, contributors=[(owner, 1_000), (dev, 9_000)])
    with p.env.prank(dev), boa.reverts(ONLY_OWNER):
        p.attribution.addContributor(asset, other, 1)
    with p.env.prank(owner):
        with boa.reverts("unknown asset"):
            p.attribution.addContributor(asset + 1, other, 1)
        with boa.reverts("contributor is the zero address"):
            p.attribution.addContributor(asset, ZERO, 1)
        with boa.reverts("the owner already holds the remaining weight"):
            p.attribution.addContributor(asset, owner, 1)
        with boa.reverts("contributor weight is zero"):
            p.attribution.addContributor(asset, other, 0)
        with boa.reverts("the owner holds less weight than that"):
            p.attribution.addContributor(asset, other, 1_001)
    unlisted = p.register(owner, contributors=[(dev, BPS)])
    with p.env.prank(owner), boa.reverts("the owner holds no weight to give"):
        p.attribution.addContributor(unlisted, other, 1)
    assert p.receipts.reputation(owner) == 1_000


def test_add_contributor_caps_the_list(p: Protocol, accts: list[str]) -> None:
    """At 16 contributors a new account is refused, an existing one is topped up."""
    owner = accts[0]
    others = [p.env.generate_address(f"c{i}") for i in range(15)]
    asset = p.register(
        owner, contributors=[(owner, 10_000 - 15 * 100)] + [(o, 100) for o in others]
    )
    with p.env.prank(owner):
        with boa.reverts("too many contributors"):
            p.attribution.addContributor(asset, accts[1], 1)
        p.attribution.addContributor(asset, others[0], 1)
    assert p.receipts.reputation(others[0]) == 101


# --------------------------------------------------------------------------- Licensing: offers


def test_offer_lists_and_logs(p: Protocol, accts: list[str]) -> None:
    """An owner's offer is stored as given and logged."""
    owner = accts[0]
    asset = p.register(owner)
    until = p.env.timestamp + DAY
    with p.env.prank(owner):
        offer = p.licensing.offer(asset, LONG_TERM, 50, 7 * DAY, NO_TERMS, 0, ZERO, until)
    [logged] = events(p.licensing, "Offered")
    assert (logged.offer, logged.asset, logged.kind, logged.price) == (1, asset, LONG_TERM, 50)
    assert (logged.duration, logged.valid_until) == (7 * DAY, until)
    got = p.licensing.getOffer(offer)
    assert (got.asset, got.kind, got.price, got.duration) == (asset, LONG_TERM, 50, 7 * DAY)
    assert (got.valid_until, got.paused, got.sold) == (until, False, 0)
    assert got.created == p.env.timestamp
    assert p.licensing.offerCount() == 1


def test_offer_is_owner_only(p: Protocol, accts: list[str]) -> None:
    """Nobody but the owner lists offers; unknown assets revert."""
    asset = p.register(accts[0])
    with boa.reverts(ONLY_OWNER):
        p.offer(accts[1], asset, FULL, price=1)
    with boa.reverts("unknown asset"):
        p.offer(accts[0], asset + 1, FULL, price=1)
    assert p.licensing.offerCount() == 0


@pytest.mark.parametrize(
    ("kind", "overrides", "reason"),
    [
        (0, {}, "unknown license type"),
        (5, {}, "unknown license type"),
        (FULL, {"valid_until": -1}, "offer would start expired"),
        (LONG_TERM, {}, "a long-term license needs a duration"),
        (PARTNERSHIP, {"share_bps": 100}, "a partnership needs a terms document"),
        (PARTNERSHIP, {"terms": TERMS}, "revenue share must be 1 to 10000 bps"),
        (
            PARTNERSHIP,
            {"terms": TERMS, "share_bps": 10_001},
            "revenue share must be 1 to 10000 bps",
        ),
        (FULL, {"terms": TERMS}, "terms and share are for partnerships"),
        (API, {"share_bps": 1}, "terms and share are for partnerships"),
        (LONG_TERM, {"duration": 1, "partner": "acct"}, "a partner is for partnerships"),
        (API, {"duration": 1}, "only long-term and partnership licenses expire"),
        (FULL, {"duration": 1}, "only long-term and partnership licenses expire"),
    ],
)
def test_offer_rejects_bad_terms(
    p: Protocol, accts: list[str], kind: int, overrides: dict[str, Any], reason: str
) -> None:
    """Each ill-formed offer reverts with its reason."""
    asset = p.register(accts[0])
    if overrides.get("valid_until") == -1:
        overrides["valid_until"] = p.env.timestamp
    if overrides.get("partner") == "acct":
        overrides["partner"] = accts[1]
    with boa.reverts(reason):
        p.offer(accts[0], asset, kind, **overrides)


def test_reprice_and_pause_are_owner_only(p: Protocol, accts: list[str]) -> None:
    """Only the owner reprices or pauses; unknown offers revert; both log OfferChanged."""
    owner, other = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, FULL, price=10)
    with p.env.prank(other):
        with boa.reverts(ONLY_OWNER):
            p.licensing.reprice(offer, 1)
        with boa.reverts(ONLY_OWNER):
            p.licensing.setPaused(offer, True)
    with p.env.prank(owner):
        with boa.reverts("unknown offer"):
            p.licensing.reprice(offer + 1, 1)
        with boa.reverts("unknown offer"):
            p.licensing.setPaused(offer + 1, True)
        p.licensing.reprice(offer, 20)
        [repriced] = events(p.licensing, "OfferChanged")
        p.licensing.setPaused(offer, True)
        [paused] = events(p.licensing, "OfferChanged")
    assert (repriced.offer, repriced.price, repriced.paused) == (offer, 20, False)
    assert (paused.offer, paused.price, paused.paused) == (offer, 20, True)
    got = p.licensing.getOffer(offer)
    assert (got.price, got.paused) == (20, True)


def test_get_offer_and_license_reject_unknown_ids(p: Protocol) -> None:
    """Offer and license 0 (and unissued ids) are unknown."""
    for offer in (0, 1):
        with boa.reverts("unknown offer"):
            p.licensing.getOffer(offer)
    for lic in (0, 1):
        with boa.reverts("unknown license"):
            p.licensing.getLicense(lic)


# --------------------------------------------------------------------------- Licensing: buying


def test_buy_full_access(p: Protocol, accts: list[str]) -> None:
    """A full-access purchase grants lasting access and pays the asset at once."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, FULL, price=3 * ETHER)
    assert not p.licensing.hasAccess(asset, buyer, ANY)
    before = p.balance(buyer)
    lic = p.buy(buyer, offer)
    [logged] = events(p.licensing, "Licensed")
    assert (logged.license, logged.offer, logged.holder, logged.asset) == (lic, offer, buyer, asset)
    assert (logged.kind, logged.price, logged.expiry, logged.calls) == (
        FULL,
        3 * ETHER,
        2**256 - 1,
        0,
    )
    assert p.balance(buyer) == before - 3 * ETHER
    assert p.attribution.claimable(owner) == 3 * ETHER
    assert p.balance(p.licensing.address) == 0
    assert p.licensing.hasAccess(asset, buyer, FULL)
    assert p.licensing.hasAccess(asset, buyer, ANY)
    assert not p.licensing.hasAccess(asset, buyer, LONG_TERM)
    assert not p.licensing.hasAccess(asset, buyer, API)
    assert not p.licensing.hasAccess(asset, buyer, PARTNERSHIP)
    p.env.time_travel(seconds=10 * 365 * DAY)
    assert p.licensing.hasAccess(asset, buyer, FULL)
    got = p.licensing.getLicense(lic)
    assert (got.offer, got.asset, got.holder, got.kind, got.price) == (
        offer,
        asset,
        buyer,
        FULL,
        3 * ETHER,
    )
    assert p.licensing.getOffer(offer).sold == 1
    assert p.licensing.licenseCount() == 1


def test_a_free_full_license_pays_nothing(p: Protocol, accts: list[str]) -> None:
    """A zero-price offer grants access without touching Attribution."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, FULL)
    p.buy(buyer, offer)
    assert events(p.licensing, "Paid") == []
    assert p.attribution.totalPaid() == 0
    assert p.licensing.hasAccess(asset, buyer, FULL)


def test_buy_checks_payment_and_calls(p: Protocol, accts: list[str]) -> None:
    """Wrong payments, calls on non-API offers and zero API calls revert."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    full = p.offer(owner, asset, FULL, price=100)
    api = p.offer(owner, asset, API, price=7)
    for value in (0, 99, 101):
        with boa.reverts("payment does not match the price"):
            p.buy(buyer, full, value=value)
    with boa.reverts("calls are for API licenses"):
        p.buy(buyer, full, calls=1, value=100)
    with boa.reverts("buy at least one call"):
        p.buy(buyer, api, calls=0, value=0)
    with boa.reverts("payment does not match the price"):
        p.buy(buyer, api, calls=3, value=20)
    with boa.reverts("unknown offer"):
        p.buy(buyer, 99, value=0)
    assert p.licensing.licenseCount() == 0
    assert not p.licensing.hasAccess(asset, buyer, ANY)


def test_a_partnership_cannot_be_bought(p: Protocol, accts: list[str]) -> None:
    """buy refuses partnership offers; they are accepted instead."""
    asset = p.register(accts[0])
    offer = p.partnership(accts[0], asset)
    with boa.reverts("a partnership is accepted, not bought"):
        p.buy(accts[1], offer, value=0)


def test_paused_offer_cannot_be_bought_until_resumed(p: Protocol, accts: list[str]) -> None:
    """A paused offer reverts; unpausing reopens it."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, FULL, price=5)
    with p.env.prank(owner):
        p.licensing.setPaused(offer, True)
    with boa.reverts("offer is paused"):
        p.buy(buyer, offer)
    with p.env.prank(owner):
        p.licensing.setPaused(offer, False)
    p.buy(buyer, offer)
    assert p.licensing.hasAccess(asset, buyer, FULL)


def test_expired_offer_cannot_be_bought(p: Protocol, accts: list[str]) -> None:
    """An offer sells until just before valid_until, then reverts."""
    owner = accts[0]
    asset = p.register(owner)
    offer = p.offer(owner, asset, FULL, price=5, valid_until=p.env.timestamp + 100)
    p.env.time_travel(seconds=99)
    p.buy(accts[1], offer)
    p.env.time_travel(seconds=1)
    with boa.reverts("offer has expired"):
        p.buy(accts[2], offer)


def test_repricing_does_not_change_a_sold_license(p: Protocol, accts: list[str]) -> None:
    """A license keeps its purchase price: metering and refunds use it after a reprice."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, API, price=10)
    lic = p.buy(buyer, offer, calls=5)
    with p.env.prank(owner):
        p.licensing.reprice(offer, 1_000)
        p.licensing.meter(lic, 2)
    assert p.attribution.claimable(owner) == 20
    with p.env.prank(buyer):
        assert p.licensing.refund(lic) == 30
    assert p.licensing.getLicense(lic).price == 10
    assert p.licensing.escrow() == 0


# --------------------------------------------------------------------------- Licensing: long term


def test_long_term_access_ends_at_expiry(p: Protocol, accts: list[str]) -> None:
    """Access lasts until start + duration, exclusive."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, LONG_TERM, price=1, duration=DAY)
    start = p.env.timestamp
    lic = p.buy(buyer, offer)
    assert p.licensing.accessUntil(asset, buyer, LONG_TERM) == start + DAY
    got = p.licensing.getLicense(lic)
    assert (got.start, got.expiry) == (start, start + DAY)
    assert p.licensing.hasAccess(asset, buyer, LONG_TERM)
    assert p.licensing.hasAccess(asset, buyer, ANY)
    assert not p.licensing.hasAccess(asset, buyer, FULL)
    p.env.time_travel(seconds=DAY - 1)
    assert p.licensing.hasAccess(asset, buyer, LONG_TERM)
    p.env.time_travel(seconds=1)
    assert not p.licensing.hasAccess(asset, buyer, LONG_TERM)
    assert not p.licensing.hasAccess(asset, buyer, ANY)


def test_long_term_renewal_extends_from_current_expiry(p: Protocol, accts: list[str]) -> None:
    """Renewing while access lasts adds the duration to the current expiry."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, LONG_TERM, price=1, duration=DAY)
    start = p.env.timestamp
    p.buy(buyer, offer)
    p.env.time_travel(seconds=DAY // 2)
    lic = p.buy(buyer, offer)
    assert p.licensing.accessUntil(asset, buyer, LONG_TERM) == start + 2 * DAY
    got = p.licensing.getLicense(lic)
    assert (got.start, got.expiry) == (start + DAY, start + 2 * DAY)
    p.env.time_travel(seconds=DAY + DAY // 2 - 1)
    assert p.licensing.hasAccess(asset, buyer, LONG_TERM)
    p.env.time_travel(seconds=1)
    assert not p.licensing.hasAccess(asset, buyer, LONG_TERM)


def test_long_term_renewal_after_expiry_starts_now(p: Protocol, accts: list[str]) -> None:
    """A lapsed licence renews from the time of purchase, not from the old expiry."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, LONG_TERM, price=1, duration=DAY)
    p.buy(buyer, offer)
    p.env.time_travel(seconds=3 * DAY)
    now = p.env.timestamp
    p.buy(buyer, offer)
    assert p.licensing.accessUntil(asset, buyer, LONG_TERM) == now + DAY


def test_owner_always_has_access(p: Protocol, accts: list[str]) -> None:
    """The owner passes hasAccess for every kind without a licence."""
    asset = p.register(accts[0])
    for kind in range(5):
        assert p.licensing.hasAccess(asset, accts[0], kind)
        assert not p.licensing.hasAccess(asset, accts[1], kind)


def test_has_access_rejects_unknown_kinds_and_assets(p: Protocol, accts: list[str]) -> None:
    """Kind 5 and unknown assets revert rather than answer False."""
    asset = p.register(accts[0])
    with boa.reverts("unknown license type"):
        p.licensing.hasAccess(asset, accts[1], 5)
    with boa.reverts("unknown asset"):
        p.licensing.hasAccess(asset + 1, accts[1], ANY)


# --------------------------------------------------------------------------- Licensing: API


def test_api_buy_meter_and_refund(p: Protocol, accts: list[str]) -> None:
    """Prepaid calls sit in escrow; metering moves them to revenue; refunds return the rest."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, API, price=10**15)
    lic = p.buy(buyer, offer, calls=10)
    assert p.licensing.apiCalls(asset, buyer) == 10
    assert p.licensing.escrow() == 10 * 10**15
    assert p.balance(p.licensing.address) == 10 * 10**15
    assert p.licensing.hasAccess(asset, buyer, API)
    assert p.licensing.hasAccess(asset, buyer, ANY)
    assert not p.licensing.hasAccess(asset, buyer, FULL)
    assert p.attribution.totalPaid() == 0

    with p.env.prank(owner):
        p.licensing.meter(lic, 4)
    [metered] = events(p.licensing, "Metered")
    assert (metered.license, metered.asset, metered.calls, metered.amount) == (
        lic,
        asset,
        4,
        4 * 10**15,
    )
    got = p.licensing.getLicense(lic)
    assert (got.calls, got.used) == (6, 4)
    assert p.licensing.apiCalls(asset, buyer) == 6
    assert p.licensing.escrow() == 6 * 10**15
    assert p.attribution.claimable(owner) == 4 * 10**15

    before = p.balance(buyer)
    with p.env.prank(buyer):
        assert p.licensing.refund(lic) == 6 * 10**15
    [refunded] = events(p.licensing, "Refunded")
    assert (refunded.license, refunded.holder, refunded.calls, refunded.amount) == (
        lic,
        buyer,
        6,
        6 * 10**15,
    )
    assert p.balance(buyer) - before == 6 * 10**15
    assert p.licensing.apiCalls(asset, buyer) == 0
    assert p.licensing.escrow() == 0
    assert p.balance(p.licensing.address) == 0
    assert not p.licensing.hasAccess(asset, buyer, API)
    with p.env.prank(buyer), boa.reverts("no unused calls"):
        p.licensing.refund(lic)


def test_meter_is_for_the_assets_meter_only(p: Protocol, accts: list[str]) -> None:
    """Only the asset's meter records calls; setMeter moves that right."""
    owner, buyer, meter = accts[0], accts[1], accts[2]
    asset = p.register(owner)
    lic = p.buy(buyer, p.offer(owner, asset, API, price=1), calls=5)
    for caller in (buyer, meter):
        with p.env.prank(caller), boa.reverts("only the asset's meter records calls"):
            p.licensing.meter(lic, 1)
    with p.env.prank(owner):
        p.registry.setMeter(asset, meter)
        with boa.reverts("only the asset's meter records calls"):
            p.licensing.meter(lic, 1)
    with p.env.prank(meter):
        p.licensing.meter(lic, 1)
    assert p.licensing.getLicense(lic).used == 1


def test_meter_cannot_exceed_prepaid_calls(p: Protocol, accts: list[str]) -> None:
    """More calls than left, or zero calls, revert and change nothing."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.offer(owner, asset, API, price=3)
    lic = p.buy(buyer, offer, calls=2)
    p.buy(buyer, offer, calls=5)  # another license's calls do not count
    with p.env.prank(owner):
        with boa.reverts("not enough prepaid calls left"):
            p.licensing.meter(lic, 3)
        with boa.reverts("no calls to record"):
            p.licensing.meter(lic, 0)
        p.licensing.meter(lic, 2)
        with boa.reverts("not enough prepaid calls left"):
            p.licensing.meter(lic, 1)
    assert p.licensing.apiCalls(asset, buyer) == 5
    assert p.licensing.escrow() == 15


def test_meter_and_refund_need_an_api_license(p: Protocol, accts: list[str]) -> None:
    """Metering or refunding a full-access or missing license reverts."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    full = p.buy(buyer, p.offer(owner, asset, FULL, price=1))
    with p.env.prank(owner), boa.reverts("not an API license"):
        p.licensing.meter(full, 1)
    with p.env.prank(owner), boa.reverts("not an API license"):
        p.licensing.meter(99, 1)
    with p.env.prank(buyer), boa.reverts("not an API license"):
        p.licensing.refund(full)


def test_refund_is_for_the_holder_only(p: Protocol, accts: list[str]) -> None:
    """Neither the owner nor a stranger can refund someone's calls."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    lic = p.buy(buyer, p.offer(owner, asset, API, price=2), calls=4)
    for caller in (owner, accts[2]):
        with p.env.prank(caller), boa.reverts("only the license holder can do this"):
            p.licensing.refund(lic)
    assert p.licensing.escrow() == 8


def test_refund_after_all_calls_are_used_reverts(p: Protocol, accts: list[str]) -> None:
    """A fully metered license has nothing to refund."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    lic = p.buy(buyer, p.offer(owner, asset, API, price=2), calls=4)
    with p.env.prank(owner):
        p.licensing.meter(lic, 4)
    with p.env.prank(buyer), boa.reverts("no unused calls"):
        p.licensing.refund(lic)


def test_free_api_calls_can_be_metered_and_refunded(p: Protocol, accts: list[str]) -> None:
    """At price 0 calls still count: metering pays nothing, refunding returns nothing."""
    owner, buyer = accts[0], accts[1]
    asset = p.register(owner)
    lic = p.buy(buyer, p.offer(owner, asset, API), calls=3)
    with p.env.prank(owner):
        p.licensing.meter(lic, 1)
    assert p.attribution.totalPaid() == 0
    with p.env.prank(buyer):
        assert p.licensing.refund(lic) == 0
    assert p.licensing.apiCalls(asset, buyer) == 0


# --------------------------------------------------------------------------- Licensing: partnership


def test_partnership_accept_and_settle(p: Protocol, accts: list[str]) -> None:
    """The named partner accepts (paying the fee), gains access, and settles its share."""
    owner, partner = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.partnership(owner, asset, price=500, share_bps=2_500, partner=partner)
    assert not p.licensing.hasAccess(asset, partner, PARTNERSHIP)
    lic = p.accept(partner, offer)
    [logged] = events(p.licensing, "Licensed")
    assert (logged.holder, logged.kind, logged.price) == (partner, PARTNERSHIP, 500)
    got = p.licensing.getLicense(lic)
    assert (got.terms, got.share_bps, got.expiry) == (TERMS, 2_500, 2**256 - 1)
    assert p.licensing.hasAccess(asset, partner, PARTNERSHIP)
    assert p.licensing.hasAccess(asset, partner, ANY)
    assert p.attribution.claimable(owner) == 500

    with p.env.prank(partner):
        p.licensing.settle(lic, 1_000, value=250)
    [settled] = events(p.licensing, "Settled")
    assert (settled.license, settled.asset, settled.revenue, settled.amount) == (
        lic,
        asset,
        1_000,
        250,
    )
    assert p.attribution.claimable(owner) == 750


def test_partnership_for_another_address_or_twice(p: Protocol, accts: list[str]) -> None:
    """A named partnership refuses other accepters and a second acceptance."""
    owner, partner, other = accts[0], accts[1], accts[2]
    asset = p.register(owner)
    offer = p.partnership(owner, asset, partner=partner)
    for caller in (other, owner):
        with boa.reverts("this partnership is offered to another address"):
            p.accept(caller, offer)
    p.accept(partner, offer)
    with boa.reverts("this partnership was already accepted"):
        p.accept(partner, offer)
    assert not p.licensing.hasAccess(asset, other, PARTNERSHIP)


def test_open_partnership_can_be_accepted_by_anyone(p: Protocol, accts: list[str]) -> None:
    """A partnership with no named partner is open to every accepter."""
    owner = accts[0]
    asset = p.register(owner)
    offer = p.partnership(owner, asset, price=1)
    p.accept(accts[1], offer)
    p.accept(accts[2], offer)
    assert p.licensing.getOffer(offer).sold == 2
    assert p.licensing.hasAccess(asset, accts[2], PARTNERSHIP)


def test_accept_checks(p: Protocol, accts: list[str]) -> None:
    """accept refuses non-partnership, paused, expired and underpaid offers."""
    owner, partner = accts[0], accts[1]
    asset = p.register(owner)
    full = p.offer(owner, asset, FULL, price=1)
    with boa.reverts("only partnership offers are accepted"):
        p.accept(partner, full)
    with boa.reverts("unknown offer"):
        p.accept(partner, 99, value=0)
    offer = p.partnership(owner, asset, price=10, valid_until=p.env.timestamp + 10)
    with boa.reverts("payment does not match the price"):
        p.accept(partner, offer, value=9)
    with p.env.prank(owner):
        p.licensing.setPaused(offer, True)
    with boa.reverts("offer is paused"):
        p.accept(partner, offer)
    with p.env.prank(owner):
        p.licensing.setPaused(offer, False)
    p.env.time_travel(seconds=10)
    with boa.reverts("offer has expired"):
        p.accept(partner, offer)


def test_partnership_with_a_duration_expires(p: Protocol, accts: list[str]) -> None:
    """A partnership's optional duration bounds its access."""
    owner, partner = accts[0], accts[1]
    asset = p.register(owner)
    offer = p.partnership(owner, asset, duration=DAY, partner=partner)
    p.accept(partner, offer)
    p.env.time_travel(seconds=DAY - 1)
    assert p.licensing.hasAccess(asset, partner, PARTNERSHIP)
    p.env.time_travel(seconds=1)
    assert not p.licensing.hasAccess(asset, partner, PARTNERSHIP)


def test_a_lasting_partnership_is_not_shortened_by_a_timed_one(
    p: Protocol, accts: list[str]
) -> None:
    """Accepting a timed partnership on top of an unlimited one keeps access unlimited."""
    owner, partner = accts[0], accts[1]
    asset = p.register(owner)
    p.accept(partner, p.partnership(owner, asset))
    lic = p.accept(partner, p.partnership(owner, asset, duration=DAY))
    assert p.licensing.getLicense(lic).expiry == 2**256 - 1
    assert p.licensing.accessUntil(asset, partner, PARTNERSHIP) == 2**256 - 1
    p.env.time_travel(seconds=10 * DAY)
    assert p.licensing.hasAccess(asset, partner, PARTNERSHIP)


def test_settle_checks(p: Protocol, accts: list[str]) -> None:
    """settle needs a partnership, its holder, a non-zero share and its exact amount."""
    owner, partner = accts[0], accts[1]
    asset = p.register(owner)
    lic = p.accept(partner, p.partnership(owner, asset, share_bps=2_500, partner=partner))
    full = p.buy(partner, p.offer(owner, asset, FULL))
    with p.env.prank(partner):
        with boa.reverts("not a partnership license"):
            p.licensing.settle(full, 100, value=25)
        with boa.reverts("nothing to settle"):
            p.licensing.settle(lic, 3, value=0)  # 3 * 2500 // 10000 == 0
        with boa.reverts("payment does not match the agreed share"):
            p.licensing.settle(lic, 100, value=24)
    with p.env.prank(owner), boa.reverts("only the license holder can do this"):
        p.licensing.settle(lic, 100, value=25)
    assert p.attribution.totalPaid() == 0


def test_license_revenue_follows_the_attribution_graph(p: Protocol, accts: list[str]) -> None:
    """Licence sales are split through upstream shares and contributor weights."""
    base = p.register(accts[0])
    model = p.register(
        accts[1],
        parents=[base],
        contributors=[(accts[1], 8_000), (accts[2], 2_000)],
        upstream_bps=1_000,
    )
    p.buy(accts[5], p.offer(accts[1], model, FULL, price=10_000))
    assert p.attribution.claimable(accts[0]) == 1_000
    assert p.attribution.claimable(accts[1]) == 7_200
    assert p.attribution.claimable(accts[2]) == 1_800


# -- derived assets of the training SAP: registered for the submitter, weighted parents --

TRAINING_SAP = "0x5a4a000000000000000000000000000000000100"


def _register_derived(
    p: Protocol, owner: str, parents: list[int], weights: list[int], upstream_bps: int
) -> int:
    with p.env.prank(TRAINING_SAP):
        return int(
            p.registry.registerDerived(
                owner,
                1,
                f"bafy{next(_cids)}",
                b"\x02" * 32,
                "tuned",
                "",
                parents,
                weights,
                upstream_bps,
            )
        )


def test_only_the_training_sap_registers_derived_assets(p: Protocol, accts: list[str]) -> None:
    a = p.register(accts[0])
    with p.env.prank(accts[1]), boa.reverts("only the training SAP registers derived assets"):
        p.registry.registerDerived(accts[1], 1, "bafyx", b"\x02" * 32, "m", "", [a], [], 0)


def test_a_derived_asset_belongs_to_the_submitter(p: Protocol, accts: list[str]) -> None:
    a = p.register(accts[0])
    model = _register_derived(p, accts[3], [a], [], 2_000)
    assert p.registry.ownerOf(model) == accts[3]
    assert p.registry.meterOf(model) == accts[3]
    assert list(p.registry.parentsOf(model)) == [a]
    assert p.receipts.balanceOf(accts[3]) == 1


def test_weighted_parents_share_the_upstream_part_by_their_weights(
    p: Protocol, accts: list[str]
) -> None:
    a = p.register(accts[0])
    b = p.register(accts[1])
    model = _register_derived(p, accts[2], [a, b], [7_500, 2_500], 4_000)
    assert list(p.attribution.parentWeightsOf(model)) == [7_500, 2_500]
    p.pay(accts[5], model, 10_001)
    # 10001 * 4000 // 10000 = 4000 upstream: 3000 to a, 1000 to b; the model keeps 6001.
    assert p.attribution.claimable(accts[0]) == 3_000
    assert p.attribution.claimable(accts[1]) == 1_000
    assert p.attribution.claimable(accts[2]) == 6_001
    assert sum(p.attribution.claimable(x) for x in accts[:3]) == 10_001


@pytest.mark.parametrize(
    ("weights", "reason"),
    [
        ([10_000], "one weight per parent"),
        ([5_000, 4_000], "parent weights must sum to 10000 bps"),
        ([10_000, 0], "parent weight is zero"),
    ],
)
def test_bad_parent_weights_are_refused(
    p: Protocol, accts: list[str], weights: list[int], reason: str
) -> None:
    a = p.register(accts[0])
    b = p.register(accts[1])
    with boa.reverts(reason):
        _register_derived(p, accts[2], [a, b], weights, 1_000)
