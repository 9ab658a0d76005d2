# pragma version ~=0.4.3
"""
@title Sahara asset registry
@notice Datasets, models, agents and compute assets: content CID, plaintext
        commitment, name, metadata URI, kind, owner, the authorised meter of API
        calls, and parent assets (derived-from edges). Registration also records the
        contributors and upstream share in the Attribution contract, which mints the
        ownership receipts. A derived asset recorded through the training SAP (a
        trained or merged model) is registered by the SAP for the job's submitter, with
        revenue weights for its parents (registerDerived).
"""

ATTRIBUTION: constant(address) = 0x5a4A000000000000000000000000000000000004
TRAINING_SAP: constant(address) = 0x5a4a000000000000000000000000000000000100

MAX_PARENTS: constant(uint256) = 4
MAX_CONTRIBUTORS: constant(uint256) = 16
KIND_COUNT: constant(uint8) = 4  # 0 dataset, 1 model, 2 agent, 3 compute

struct Contribution:
    account: address
    weight_bps: uint256

struct Asset:
    owner: address
    kind: uint8
    cid: String[128]
    commitment: bytes32
    name: String[64]
    uri: String[256]
    meter: address
    created: uint256
    parents: DynArray[uint256, MAX_PARENTS]

interface Attribution:
    def setup(asset: uint256, owner: address, contributors: DynArray[Contribution, MAX_CONTRIBUTORS], upstream_bps: uint256, parent_weights: DynArray[uint256, MAX_PARENTS]): nonpayable

event Registered:
    asset: indexed(uint256)
    owner: indexed(address)
    kind: indexed(uint8)
    cid: String[128]
    commitment: bytes32
    name: String[64]
    uri: String[256]
    parents: DynArray[uint256, MAX_PARENTS]

event MetadataUpdated:
    asset: indexed(uint256)
    uri: String[256]

event MeterChanged:
    asset: indexed(uint256)
    meter: address

assets: HashMap[uint256, Asset]
count: public(uint256)
cidAsset: public(HashMap[bytes32, uint256])

@external
def register(
    kind: uint8,
    cid: String[128],
    commitment: bytes32,
    name: String[64],
    uri: String[256],
    parents: DynArray[uint256, MAX_PARENTS],
    contributors: DynArray[Contribution, MAX_CONTRIBUTORS],
    upstream_bps: uint256,
) -> uint256:
    """
    @notice Register an asset owned by the sender.
    @param contributors Revenue weights in basis points summing to 10,000; empty means
           the owner alone.
    @param upstream_bps Share of every payment that flows on to the parents.
    """
    return self._register(
        msg.sender, kind, cid, commitment, name, uri, parents, [], contributors, upstream_bps
    )

@external
def registerDerived(
    owner: address,
    kind: uint8,
    cid: String[128],
    commitment: bytes32,
    name: String[64],
    uri: String[256],
    parents: DynArray[uint256, MAX_PARENTS],
    parent_weights: DynArray[uint256, MAX_PARENTS],
    upstream_bps: uint256,
) -> uint256:
    """
    @notice Register the output of a finalised training or merge job for ``owner``.
            Only the training SAP can, after the job's challenge window.
    @param parent_weights How the upstream share is split among the parents, in basis
           points summing to 10,000; empty means equally.
    """
    assert msg.sender == TRAINING_SAP, "only the training SAP registers derived assets"
    assert owner != empty(address), "owner is the zero address"
    return self._register(owner, kind, cid, commitment, name, uri, parents, parent_weights, [], upstream_bps)

@internal
def _register(
    owner: address,
    kind: uint8,
    cid: String[128],
    commitment: bytes32,
    name: String[64],
    uri: String[256],
    parents: DynArray[uint256, MAX_PARENTS],
    parent_weights: DynArray[uint256, MAX_PARENTS],
    contributors: DynArray[Contribution, MAX_CONTRIBUTORS],
    upstream_bps: uint256,
) -> uint256:
    assert kind < KIND_COUNT, "unknown asset kind"
    assert len(cid) > 0, "content id is empty"
    assert len(name) > 0, "asset name is empty"
    key: bytes32 = keccak256(cid)
    assert self.cidAsset[key] == 0, "content id is already registered"
    asset_id: uint256 = self.count + 1
    for i: uint256 in range(MAX_PARENTS):
        if i >= len(parents):
            break
        parent: uint256 = parents[i]
        assert parent != 0 and parent < asset_id, "unknown parent asset"
        for j: uint256 in range(MAX_PARENTS):
            if j >= i:
                break
            assert parents[j] != parent, "parent listed twice"
    assert upstream_bps <= 10000, "upstream share is over 10000 bps"
    assert upstream_bps == 0 or len(parents) > 0, "an upstream share needs a parent asset"
    assert len(parent_weights) == 0 or len(parent_weights) == len(parents), "one weight per parent"
    self.count = asset_id
    self.cidAsset[key] = asset_id
    self.assets[asset_id] = Asset(
        owner=owner,
        kind=kind,
        cid=cid,
        commitment=commitment,
        name=name,
        uri=uri,
        meter=owner,
        created=block.timestamp,
        parents=parents,
    )
    extcall Attribution(ATTRIBUTION).setup(asset_id, owner, contributors, upstream_bps, parent_weights)
    log Registered(
        asset=asset_id, owner=owner, kind=kind, cid=cid, commitment=commitment,
        name=name, uri=uri, parents=parents,
    )
    return asset_id

@external
def setMetadata(asset_id: uint256, uri: String[256]):
    assert self.assets[asset_id].owner != empty(address), "unknown asset"
    assert self.assets[asset_id].owner == msg.sender, "only the asset owner can do this"
    self.assets[asset_id].uri = uri
    log MetadataUpdated(asset=asset_id, uri=uri)

@external
def setMeter(asset_id: uint256, meter: address):
    """@notice Authorise the address that records API calls of this asset."""
    assert self.assets[asset_id].owner != empty(address), "unknown asset"
    assert self.assets[asset_id].owner == msg.sender, "only the asset owner can do this"
    assert meter != empty(address), "meter is the zero address"
    self.assets[asset_id].meter = meter
    log MeterChanged(asset=asset_id, meter=meter)

@external
@view
def getAsset(asset_id: uint256) -> Asset:
    assert self.assets[asset_id].owner != empty(address), "unknown asset"
    return self.assets[asset_id]

@external
@view
def exists(asset_id: uint256) -> bool:
    return self.assets[asset_id].owner != empty(address)

@external
@view
def ownerOf(asset_id: uint256) -> address:
    owner: address = self.assets[asset_id].owner
    assert owner != empty(address), "unknown asset"
    return owner

@external
@view
def meterOf(asset_id: uint256) -> address:
    assert self.assets[asset_id].owner != empty(address), "unknown asset"
    return self.assets[asset_id].meter

@external
@view
def parentsOf(asset_id: uint256) -> DynArray[uint256, MAX_PARENTS]:
    assert self.assets[asset_id].owner != empty(address), "unknown asset"
    return self.assets[asset_id].parents
