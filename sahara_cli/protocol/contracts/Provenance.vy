# pragma version ~=0.4.3
"""
@title Sahara provenance records
@notice One record per answer an agent gave: which asset answered, the keccak256
        digest of the answer's provenance document (model, prompt and answer hashes,
        retrieved assets, tool calls; kept off chain by the agent), the assets it
        retrieved and the API license it was served under (0: none). The recorder is
        whoever sent the record; readers decide whose records they trust.
"""

REGISTRY: constant(address) = 0x5A4A000000000000000000000000000000000001
LICENSING: constant(address) = 0x5a4A000000000000000000000000000000000003

MAX_SOURCES: constant(uint256) = 4

struct Record:
    recorder: address
    asset: uint256
    digest: bytes32
    license: uint256
    time: uint256

struct License:
    offer: uint256
    asset: uint256
    holder: address
    kind: uint8
    price: uint256
    start: uint256
    expiry: uint256
    calls: uint256
    used: uint256
    terms: bytes32
    share_bps: uint256

interface Registry:
    def exists(asset_id: uint256) -> bool: view

interface Licensing:
    def getLicense(license_id: uint256) -> License: view

event Recorded:
    id: indexed(uint256)
    asset: indexed(uint256)
    recorder: indexed(address)
    digest: bytes32
    sources: DynArray[uint256, MAX_SOURCES]
    license: uint256

records: HashMap[uint256, Record]
recordCount: public(uint256)

@external
def record(
    asset: uint256,
    digest: bytes32,
    sources: DynArray[uint256, MAX_SOURCES],
    license_id: uint256,
) -> uint256:
    """
    @notice Record the provenance digest of one answer of ``asset``.
    @param sources Assets the answer retrieved (kept in the event only).
    @param license_id The license the answer was served under, for ``asset``; 0: none.
    """
    assert staticcall Registry(REGISTRY).exists(asset), "unknown asset"
    assert digest != empty(bytes32), "digest is empty"
    for source: uint256 in sources:
        assert staticcall Registry(REGISTRY).exists(source), "unknown source asset"
    if license_id != 0:
        lic: License = staticcall Licensing(LICENSING).getLicense(license_id)
        assert lic.asset == asset, "the license is for another asset"
    record_id: uint256 = self.recordCount + 1
    self.recordCount = record_id
    self.records[record_id] = Record(
        recorder=msg.sender, asset=asset, digest=digest, license=license_id, time=block.timestamp
    )
    log Recorded(
        id=record_id, asset=asset, recorder=msg.sender, digest=digest, sources=sources,
        license=license_id,
    )
    return record_id

@external
@view
def getRecord(record_id: uint256) -> Record:
    assert self.records[record_id].recorder != empty(address), "unknown record"
    return self.records[record_id]
