# pragma version ~=0.4.3
"""
@title Sahara ownership receipts
@notice Non-transferable, non-fungible proofs of ownership and contribution.
        ERC-721 shaped and ERC-5192 locked: every transfer or approval reverts.
        Minted by the Attribution contract when an asset is registered (role OWNER)
        and when a contributor is added (role CONTRIBUTOR). Each receipt records its
        asset, role and share; an address's reputation is the sum of the shares of
        its receipts, in basis points (10,000 = one whole asset).
"""

ATTRIBUTION: constant(address) = 0x5a4A000000000000000000000000000000000004

ROLE_OWNER: constant(uint8) = 1
ROLE_CONTRIBUTOR: constant(uint8) = 2

struct Receipt:
    holder: address
    asset: uint256
    role: uint8
    share_bps: uint256
    minted: uint256

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    token_id: indexed(uint256)

event Locked:
    token_id: uint256

event ShareChanged:
    token_id: indexed(uint256)
    share_bps: uint256

receipts: public(HashMap[uint256, Receipt])
receiptOf: public(HashMap[uint256, HashMap[address, uint256]])
balanceOf: public(HashMap[address, uint256])
reputation: public(HashMap[address, uint256])
totalSupply: public(uint256)

@external
@pure
def name() -> String[32]:
    return "Sahara Receipts"

@external
@pure
def symbol() -> String[8]:
    return "SRCPT"

@external
@pure
def supportsInterface(interface_id: bytes4) -> bool:
    # ERC-165, ERC-721, ERC-5192
    return interface_id in [0x01ffc9a7, 0x80ac58cd, 0xb45a3c0e]

@external
@view
def ownerOf(token_id: uint256) -> address:
    holder: address = self.receipts[token_id].holder
    assert holder != empty(address), "unknown receipt"
    return holder

@external
@view
def locked(token_id: uint256) -> bool:
    assert self.receipts[token_id].holder != empty(address), "unknown receipt"
    return True

@external
@view
def getApproved(token_id: uint256) -> address:
    assert self.receipts[token_id].holder != empty(address), "unknown receipt"
    return empty(address)

@external
@view
def isApprovedForAll(owner: address, operator: address) -> bool:
    return False

@external
def transferFrom(sender: address, receiver: address, token_id: uint256):
    raise "receipts are non-transferable"

@external
def safeTransferFrom(sender: address, receiver: address, token_id: uint256, data: Bytes[1024] = b""):
    raise "receipts are non-transferable"

@external
def approve(operator: address, token_id: uint256):
    raise "receipts are non-transferable"

@external
def setApprovalForAll(operator: address, approved: bool):
    raise "receipts are non-transferable"

@external
def mint(holder: address, asset: uint256, role: uint8, share_bps: uint256) -> uint256:
    """Mint a receipt, or update the share of the one ``holder`` has for ``asset``."""
    assert msg.sender == ATTRIBUTION, "only the attribution contract mints receipts"
    assert holder != empty(address), "receipt holder is the zero address"
    token_id: uint256 = self.receiptOf[asset][holder]
    if token_id != 0:
        self._set_share(token_id, share_bps)
        return token_id
    token_id = self.totalSupply + 1
    self.totalSupply = token_id
    self.receipts[token_id] = Receipt(
        holder=holder, asset=asset, role=role, share_bps=share_bps, minted=block.timestamp
    )
    self.receiptOf[asset][holder] = token_id
    self.balanceOf[holder] += 1
    self.reputation[holder] += share_bps
    log Transfer(sender=empty(address), receiver=holder, token_id=token_id)
    log Locked(token_id=token_id)
    return token_id

@external
def setShare(asset: uint256, holder: address, share_bps: uint256):
    assert msg.sender == ATTRIBUTION, "only the attribution contract changes shares"
    token_id: uint256 = self.receiptOf[asset][holder]
    assert token_id != 0, "unknown receipt"
    self._set_share(token_id, share_bps)

@internal
def _set_share(token_id: uint256, share_bps: uint256):
    holder: address = self.receipts[token_id].holder
    self.reputation[holder] = self.reputation[holder] - self.receipts[token_id].share_bps + share_bps
    self.receipts[token_id].share_bps = share_bps
    log ShareChanged(token_id=token_id, share_bps=share_bps)
