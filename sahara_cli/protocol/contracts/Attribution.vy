# pragma version ~=0.4.3
"""
@title Sahara attribution and revenue
@notice The contribution graph of each asset: contributors with weights in basis
        points summing to 10,000, and an upstream share that flows on to the parent
        assets, recursively up to MAX_DEPTH levels. A payment into an asset is split
        and credited at once; nothing is sent until an account calls claim() (pull,
        never push). Every wei paid in is credited to exactly one account: the
        rounding remainder of each split goes to the asset's owner.
        payWith() also names the source assets a payment was earned with (the vault
        assets an agent's answer retrieved): at the first level their upstream share
        is split equally among the asset's parents and those sources together.
        A derived asset registered through the training SAP may weigh its parents
        (a merge's weights): the parents' part of the upstream share is then split by
        those weights instead of equally.
"""

REGISTRY: constant(address) = 0x5A4A000000000000000000000000000000000001
RECEIPTS: constant(address) = 0x5a4a000000000000000000000000000000000002

MAX_PARENTS: constant(uint256) = 4
MAX_SOURCES: constant(uint256) = 4
MAX_CONTRIBUTORS: constant(uint256) = 16
MAX_DEPTH: constant(uint256) = 3
# The first level has up to MAX_PARENTS + MAX_SOURCES recipients, each deeper level
# four times the one before: 1 + 8 + 32 + 128.
MAX_WORK: constant(uint256) = 169
BPS: constant(uint256) = 10000
ROLE_OWNER: constant(uint8) = 1
ROLE_CONTRIBUTOR: constant(uint8) = 2

struct Contribution:
    account: address
    weight_bps: uint256

struct Work:
    asset: uint256
    amount: uint256
    depth: uint256

interface Registry:
    def ownerOf(asset_id: uint256) -> address: view
    def parentsOf(asset_id: uint256) -> DynArray[uint256, MAX_PARENTS]: view
    def exists(asset_id: uint256) -> bool: view

interface Receipts:
    def mint(holder: address, asset: uint256, role: uint8, share_bps: uint256) -> uint256: nonpayable
    def setShare(asset: uint256, holder: address, share_bps: uint256): nonpayable

event ContributorsSet:
    asset: indexed(uint256)
    contributors: DynArray[Contribution, MAX_CONTRIBUTORS]
    upstream_bps: uint256

event Paid:
    asset: indexed(uint256)
    payer: indexed(address)
    amount: uint256

event Credited:
    asset: indexed(uint256)
    account: indexed(address)
    amount: uint256

event Claimed:
    account: indexed(address)
    amount: uint256

contributors: HashMap[uint256, DynArray[Contribution, MAX_CONTRIBUTORS]]
upstreamOf: public(HashMap[uint256, uint256])
parentWeights: HashMap[uint256, DynArray[uint256, MAX_PARENTS]]
received: public(HashMap[uint256, uint256])
claimable: public(HashMap[address, uint256])
claimed: public(HashMap[address, uint256])
totalPaid: public(uint256)
totalClaimed: public(uint256)

@external
def setup(
    asset: uint256,
    owner: address,
    contributors: DynArray[Contribution, MAX_CONTRIBUTORS],
    upstream_bps: uint256,
    parent_weights: DynArray[uint256, MAX_PARENTS],
):
    assert msg.sender == REGISTRY, "only the registry sets contributors"
    assert upstream_bps <= BPS, "upstream share is over 10000 bps"
    if len(parent_weights) > 0:
        weight_total: uint256 = 0
        for weight: uint256 in parent_weights:
            assert weight > 0, "parent weight is zero"
            weight_total += weight
        assert weight_total == BPS, "parent weights must sum to 10000 bps"
        self.parentWeights[asset] = parent_weights
    entries: DynArray[Contribution, MAX_CONTRIBUTORS] = contributors
    if len(entries) == 0:
        entries.append(Contribution(account=owner, weight_bps=BPS))
    total: uint256 = 0
    owner_listed: bool = False
    for i: uint256 in range(MAX_CONTRIBUTORS):
        if i >= len(entries):
            break
        entry: Contribution = entries[i]
        assert entry.account != empty(address), "contributor is the zero address"
        assert entry.weight_bps > 0, "contributor weight is zero"
        for j: uint256 in range(MAX_CONTRIBUTORS):
            if j >= i:
                break
            assert entries[j].account != entry.account, "contributor listed twice"
        total += entry.weight_bps
        if entry.account == owner:
            owner_listed = True
    assert total == BPS, "contributor weights must sum to 10000 bps"
    self.contributors[asset] = entries
    self.upstreamOf[asset] = upstream_bps
    if not owner_listed:
        extcall Receipts(RECEIPTS).mint(owner, asset, ROLE_OWNER, 0)
    for entry: Contribution in entries:
        role: uint8 = ROLE_CONTRIBUTOR
        if entry.account == owner:
            role = ROLE_OWNER
        extcall Receipts(RECEIPTS).mint(entry.account, asset, role, entry.weight_bps)
    log ContributorsSet(asset=asset, contributors=entries, upstream_bps=upstream_bps)

@external
def addContributor(asset: uint256, account: address, weight_bps: uint256):
    """
    @notice Give ``account`` ``weight_bps`` of the asset's revenue, taken from the
            owner's own weight. Only the owner can; revenue already credited stays.
    """
    owner: address = staticcall Registry(REGISTRY).ownerOf(asset)
    assert msg.sender == owner, "only the asset owner can do this"
    assert account != empty(address), "contributor is the zero address"
    assert account != owner, "the owner already holds the remaining weight"
    assert weight_bps > 0, "contributor weight is zero"
    entries: DynArray[Contribution, MAX_CONTRIBUTORS] = self.contributors[asset]
    owner_index: uint256 = max_value(uint256)
    account_index: uint256 = max_value(uint256)
    for i: uint256 in range(MAX_CONTRIBUTORS):
        if i >= len(entries):
            break
        if entries[i].account == owner:
            owner_index = i
        elif entries[i].account == account:
            account_index = i
    assert owner_index != max_value(uint256), "the owner holds no weight to give"
    assert entries[owner_index].weight_bps >= weight_bps, "the owner holds less weight than that"
    entries[owner_index].weight_bps -= weight_bps
    new_weight: uint256 = weight_bps
    if account_index == max_value(uint256):
        assert len(entries) < MAX_CONTRIBUTORS, "too many contributors"
        entries.append(Contribution(account=account, weight_bps=weight_bps))
    else:
        entries[account_index].weight_bps += weight_bps
        new_weight = entries[account_index].weight_bps
    self.contributors[asset] = entries
    extcall Receipts(RECEIPTS).setShare(asset, owner, entries[owner_index].weight_bps)
    extcall Receipts(RECEIPTS).mint(account, asset, ROLE_CONTRIBUTOR, new_weight)
    log ContributorsSet(asset=asset, contributors=entries, upstream_bps=self.upstreamOf[asset])

@external
@payable
def pay(asset: uint256):
    """@notice Pay revenue into an asset; it is split and credited at once."""
    assert staticcall Registry(REGISTRY).exists(asset), "unknown asset"
    assert msg.value > 0, "payment is zero"
    self.totalPaid += msg.value
    log Paid(asset=asset, payer=msg.sender, amount=msg.value)
    self._distribute(asset, msg.value, [])

@external
@payable
def payWith(asset: uint256, sources: DynArray[uint256, MAX_SOURCES]):
    """
    @notice Pay revenue into an asset that was earned with ``sources``: the asset's
            upstream share is split equally among its parents and the sources. A
            source that is a parent, the asset itself or listed twice counts once.
            Beyond the first level the split follows the parents only, as pay() does.
    """
    assert staticcall Registry(REGISTRY).exists(asset), "unknown asset"
    assert msg.value > 0, "payment is zero"
    for source: uint256 in sources:
        assert staticcall Registry(REGISTRY).exists(source), "unknown source asset"
    self.totalPaid += msg.value
    log Paid(asset=asset, payer=msg.sender, amount=msg.value)
    self._distribute(asset, msg.value, sources)

@external
def claim() -> uint256:
    """@notice Send the caller everything credited to it."""
    amount: uint256 = self.claimable[msg.sender]
    assert amount > 0, "nothing to claim"
    self.claimable[msg.sender] = 0
    self.claimed[msg.sender] += amount
    self.totalClaimed += amount
    log Claimed(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount

@external
@view
def contributorsOf(asset: uint256) -> DynArray[Contribution, MAX_CONTRIBUTORS]:
    return self.contributors[asset]

@external
@view
def parentWeightsOf(asset: uint256) -> DynArray[uint256, MAX_PARENTS]:
    """@notice The parents' weights in bps (empty: the upstream share is split equally)."""
    return self.parentWeights[asset]

@internal
def _credit(asset: uint256, account: address, amount: uint256):
    if amount == 0:
        return
    self.claimable[account] += amount
    log Credited(asset=asset, account=account, amount=amount)

@internal
def _distribute(asset: uint256, amount: uint256, sources: DynArray[uint256, MAX_SOURCES]):
    work: DynArray[Work, MAX_WORK] = [Work(asset=asset, amount=amount, depth=0)]
    for i: uint256 in range(MAX_WORK):
        if i >= len(work):
            break
        item: Work = work[i]
        self.received[item.asset] += item.amount
        local: uint256 = item.amount
        upstream_bps: uint256 = self.upstreamOf[item.asset]
        if upstream_bps > 0 and item.depth < MAX_DEPTH:
            parents: DynArray[uint256, MAX_PARENTS] = staticcall Registry(REGISTRY).parentsOf(item.asset)
            targets: DynArray[uint256, MAX_PARENTS + MAX_SOURCES] = []
            for parent: uint256 in parents:
                targets.append(parent)
            if item.depth == 0:
                for source: uint256 in sources:
                    if source != item.asset and source not in targets:
                        targets.append(source)
            if len(targets) > 0:
                per_target: uint256 = item.amount * upstream_bps // BPS // len(targets)
                if per_target > 0:
                    weights: DynArray[uint256, MAX_PARENTS] = self.parentWeights[item.asset]
                    weighted: bool = len(weights) > 0 and len(weights) == len(parents)
                    pool: uint256 = per_target * len(parents)
                    sent: uint256 = 0
                    for k: uint256 in range(MAX_PARENTS + MAX_SOURCES):
                        if k >= len(targets):
                            break
                        part: uint256 = per_target
                        if weighted and k < len(parents):
                            part = pool * weights[k] // BPS
                        if part > 0:
                            work.append(Work(asset=targets[k], amount=part, depth=item.depth + 1))
                            sent += part
                    local -= sent
        given: uint256 = 0
        for entry: Contribution in self.contributors[item.asset]:
            part: uint256 = local * entry.weight_bps // BPS
            given += part
            self._credit(item.asset, entry.account, part)
        self._credit(item.asset, staticcall Registry(REGISTRY).ownerOf(item.asset), local - given)
