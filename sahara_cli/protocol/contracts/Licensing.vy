# pragma version ~=0.4.3
"""
@title Sahara licensing and marketplace
@notice The four license types of the Sahara AI platform, sold from offers that the
        asset's owner lists (the marketplace is the set of open offers):
          API (1)         price per call; the buyer prepays calls; the asset's meter
                          records calls and each call moves its price to the asset's
                          revenue; unused calls can be refunded.
          Full-Access (2) one-time price; access to the plaintext and parameters.
          Long-term (3)   one-time price; unlimited access until an expiry time.
          Partnership (4) custom terms (hash of a terms document) and a revenue share,
                          offered by the owner and accepted by the partner: both sign
                          on chain; the partner settles the agreed share of its revenue.
        Repricing or pausing an offer never changes licenses already sold.
        hasAccess(asset, user, kind) is the one check the vault and agents call.
        meterWith() records calls of an agent and names the assets its answers used,
        so their contributors share the revenue (Attribution.payWith).
        meterFor() is the same for the inference SAP, which records an answer and
        meters its calls in one step on behalf of the asset's meter.
"""

REGISTRY: constant(address) = 0x5A4A000000000000000000000000000000000001
ATTRIBUTION: constant(address) = 0x5a4A000000000000000000000000000000000004
INFERENCE_SAP: constant(address) = 0x5A4A000000000000000000000000000000000101

ANY: constant(uint8) = 0
API: constant(uint8) = 1
FULL: constant(uint8) = 2
LONG_TERM: constant(uint8) = 3
PARTNERSHIP: constant(uint8) = 4
BPS: constant(uint256) = 10000
MAX_SOURCES: constant(uint256) = 4
FOREVER: constant(uint256) = max_value(uint256)

struct Offer:
    asset: uint256
    kind: uint8
    price: uint256
    duration: uint256
    terms: bytes32
    share_bps: uint256
    partner: address
    valid_until: uint256
    paused: bool
    sold: uint256
    created: uint256

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
    def ownerOf(asset_id: uint256) -> address: view
    def meterOf(asset_id: uint256) -> address: view

interface Attribution:
    def pay(asset: uint256): payable
    def payWith(asset: uint256, sources: DynArray[uint256, MAX_SOURCES]): payable

event Offered:
    offer: indexed(uint256)
    asset: indexed(uint256)
    kind: indexed(uint8)
    price: uint256
    duration: uint256
    terms: bytes32
    share_bps: uint256
    partner: address
    valid_until: uint256

event OfferChanged:
    offer: indexed(uint256)
    price: uint256
    paused: bool

event Licensed:
    license: indexed(uint256)
    offer: indexed(uint256)
    holder: indexed(address)
    asset: uint256
    kind: uint8
    price: uint256
    expiry: uint256
    calls: uint256

event Metered:
    license: indexed(uint256)
    asset: indexed(uint256)
    calls: uint256
    amount: uint256

event Settled:
    license: indexed(uint256)
    asset: indexed(uint256)
    revenue: uint256
    amount: uint256

event Refunded:
    license: indexed(uint256)
    holder: indexed(address)
    calls: uint256
    amount: uint256

offers: HashMap[uint256, Offer]
licenses: HashMap[uint256, License]
offerCount: public(uint256)
licenseCount: public(uint256)
accessUntil: public(HashMap[uint256, HashMap[address, HashMap[uint8, uint256]]])
apiCalls: public(HashMap[uint256, HashMap[address, uint256]])
escrow: public(uint256)

@internal
@view
def _only_owner(asset: uint256):
    assert staticcall Registry(REGISTRY).ownerOf(asset) == msg.sender, "only the asset owner can do this"

@internal
@view
def _offer(offer_id: uint256) -> Offer:
    offer: Offer = self.offers[offer_id]
    assert offer.kind != 0, "unknown offer"
    return offer

@internal
@view
def _open(offer: Offer):
    assert not offer.paused, "offer is paused"
    assert offer.valid_until == 0 or block.timestamp < offer.valid_until, "offer has expired"

@internal
def _pay(asset: uint256, amount: uint256):
    if amount > 0:
        extcall Attribution(ATTRIBUTION).pay(asset, value=amount)

@internal
def _grant(offer_id: uint256, offer: Offer, calls: uint256) -> uint256:
    license_id: uint256 = self.licenseCount + 1
    self.licenseCount = license_id
    start: uint256 = block.timestamp
    expiry: uint256 = FOREVER
    if offer.kind == API:
        self.apiCalls[offer.asset][msg.sender] += calls
    else:
        current: uint256 = self.accessUntil[offer.asset][msg.sender][offer.kind]
        if offer.duration > 0:
            # A renewal while access lasts extends it from the current expiry.
            if current != FOREVER and current > start:
                start = current
            expiry = start + offer.duration
            if current == FOREVER:
                expiry = FOREVER
        self.accessUntil[offer.asset][msg.sender][offer.kind] = expiry
    self.licenses[license_id] = License(
        offer=offer_id,
        asset=offer.asset,
        holder=msg.sender,
        kind=offer.kind,
        price=offer.price,
        start=start,
        expiry=expiry,
        calls=calls,
        used=0,
        terms=offer.terms,
        share_bps=offer.share_bps,
    )
    self.offers[offer_id].sold += 1
    log Licensed(
        license=license_id, offer=offer_id, holder=msg.sender, asset=offer.asset,
        kind=offer.kind, price=offer.price, expiry=expiry, calls=calls,
    )
    return license_id

@external
def offer(
    asset: uint256,
    kind: uint8,
    price: uint256,
    duration: uint256,
    terms: bytes32,
    share_bps: uint256,
    partner: address,
    valid_until: uint256,
) -> uint256:
    """
    @notice List a license offer for an asset you own.
    @param price Per call for API, one-time otherwise (the upfront fee of a partnership).
    @param duration Seconds of access: required for long-term, optional for a
           partnership, ignored otherwise.
    @param partner The only address that may accept a partnership (empty: anyone).
    @param valid_until The offer cannot be bought after this time (0: no limit).
    """
    self._only_owner(asset)
    assert kind >= API and kind <= PARTNERSHIP, "unknown license type"
    assert valid_until == 0 or valid_until > block.timestamp, "offer would start expired"
    if kind == LONG_TERM:
        assert duration > 0, "a long-term license needs a duration"
    if kind == PARTNERSHIP:
        assert terms != empty(bytes32), "a partnership needs a terms document"
        assert share_bps > 0 and share_bps <= BPS, "revenue share must be 1 to 10000 bps"
    else:
        assert terms == empty(bytes32) and share_bps == 0, "terms and share are for partnerships"
        assert partner == empty(address), "a partner is for partnerships"
    if kind == API or kind == FULL:
        assert duration == 0, "only long-term and partnership licenses expire"
    offer_id: uint256 = self.offerCount + 1
    self.offerCount = offer_id
    self.offers[offer_id] = Offer(
        asset=asset, kind=kind, price=price, duration=duration, terms=terms,
        share_bps=share_bps, partner=partner, valid_until=valid_until, paused=False,
        sold=0, created=block.timestamp,
    )
    log Offered(
        offer=offer_id, asset=asset, kind=kind, price=price, duration=duration,
        terms=terms, share_bps=share_bps, partner=partner, valid_until=valid_until,
    )
    return offer_id

@external
def reprice(offer_id: uint256, price: uint256):
    offer: Offer = self._offer(offer_id)
    self._only_owner(offer.asset)
    self.offers[offer_id].price = price
    log OfferChanged(offer=offer_id, price=price, paused=offer.paused)

@external
def setPaused(offer_id: uint256, paused: bool):
    offer: Offer = self._offer(offer_id)
    self._only_owner(offer.asset)
    self.offers[offer_id].paused = paused
    log OfferChanged(offer=offer_id, price=offer.price, paused=paused)

@external
@payable
def buy(offer_id: uint256, calls: uint256) -> uint256:
    """
    @notice Buy a license from an offer: ``calls`` prepaid calls for an API offer
            (send price x calls), or the one-time price otherwise (calls must be 0).
    """
    offer: Offer = self._offer(offer_id)
    self._open(offer)
    assert offer.kind != PARTNERSHIP, "a partnership is accepted, not bought"
    cost: uint256 = offer.price
    if offer.kind == API:
        assert calls > 0, "buy at least one call"
        cost = offer.price * calls
        self.escrow += cost
    else:
        assert calls == 0, "calls are for API licenses"
    assert msg.value == cost, "payment does not match the price"
    license_id: uint256 = self._grant(offer_id, offer, calls)
    if offer.kind != API:
        self._pay(offer.asset, cost)
    return license_id

@external
@payable
def accept(offer_id: uint256) -> uint256:
    """@notice Accept a partnership offer: the partner's signature on its terms."""
    offer: Offer = self._offer(offer_id)
    self._open(offer)
    assert offer.kind == PARTNERSHIP, "only partnership offers are accepted"
    if offer.partner != empty(address):
        assert msg.sender == offer.partner, "this partnership is offered to another address"
        assert offer.sold == 0, "this partnership was already accepted"
    assert msg.value == offer.price, "payment does not match the price"
    license_id: uint256 = self._grant(offer_id, offer, 0)
    self._pay(offer.asset, offer.price)
    return license_id

@internal
def _meter(license_id: uint256, calls: uint256, meter: address) -> (uint256, uint256):
    lic: License = self.licenses[license_id]
    assert lic.kind == API, "not an API license"
    assert meter == staticcall Registry(REGISTRY).meterOf(lic.asset), "only the asset's meter records calls"
    assert calls > 0, "no calls to record"
    assert calls <= lic.calls, "not enough prepaid calls left"
    amount: uint256 = calls * lic.price
    self.licenses[license_id].calls = lic.calls - calls
    self.licenses[license_id].used = lic.used + calls
    self.apiCalls[lic.asset][lic.holder] -= calls
    self.escrow -= amount
    log Metered(license=license_id, asset=lic.asset, calls=calls, amount=amount)
    return lic.asset, amount

@external
def meter(license_id: uint256, calls: uint256):
    """@notice Record API calls; each moves its price from the prepayment to revenue."""
    asset: uint256 = 0
    amount: uint256 = 0
    asset, amount = self._meter(license_id, calls, msg.sender)
    self._pay(asset, amount)

@external
def meterWith(license_id: uint256, calls: uint256, sources: DynArray[uint256, MAX_SOURCES]):
    """
    @notice Record API calls like meter(), naming the assets the calls' answers used:
            the revenue is paid with Attribution.payWith, so their contributors share
            the asset's upstream part. Unknown source assets revert.
    """
    asset: uint256 = 0
    amount: uint256 = 0
    asset, amount = self._meter(license_id, calls, msg.sender)
    if amount > 0:
        extcall Attribution(ATTRIBUTION).payWith(asset, sources, value=amount)

@external
def meterFor(
    meter: address,
    asset: uint256,
    license_id: uint256,
    calls: uint256,
    sources: DynArray[uint256, MAX_SOURCES],
) -> uint256:
    """
    @notice meterWith() on behalf of ``meter``, the asset's meter, who sent the answer's
            record of ``asset`` to the inference SAP. Only the inference SAP can call it.
    @return The amount moved from the prepayment to the asset's revenue.
    """
    assert msg.sender == INFERENCE_SAP, "only the inference SAP meters for a meter"
    assert self.licenses[license_id].asset == asset, "the license is for another asset"
    metered: uint256 = 0
    amount: uint256 = 0
    metered, amount = self._meter(license_id, calls, meter)
    if amount > 0:
        extcall Attribution(ATTRIBUTION).payWith(metered, sources, value=amount)
    return amount

@external
def refund(license_id: uint256) -> uint256:
    """@notice Return the price of an API license's unused calls to its holder."""
    lic: License = self.licenses[license_id]
    assert lic.kind == API, "not an API license"
    assert msg.sender == lic.holder, "only the license holder can do this"
    assert lic.calls > 0, "no unused calls"
    amount: uint256 = lic.calls * lic.price
    self.licenses[license_id].calls = 0
    self.apiCalls[lic.asset][lic.holder] -= lic.calls
    self.escrow -= amount
    log Refunded(license=license_id, holder=msg.sender, calls=lic.calls, amount=amount)
    if amount > 0:
        raw_call(msg.sender, b"", value=amount)
    return amount

@external
@payable
def settle(license_id: uint256, revenue: uint256):
    """@notice A partner pays the agreed share of ``revenue`` it made with the asset."""
    lic: License = self.licenses[license_id]
    assert lic.kind == PARTNERSHIP, "not a partnership license"
    assert msg.sender == lic.holder, "only the license holder can do this"
    amount: uint256 = revenue * lic.share_bps // BPS
    assert amount > 0, "nothing to settle"
    assert msg.value == amount, "payment does not match the agreed share"
    log Settled(license=license_id, asset=lic.asset, revenue=revenue, amount=amount)
    self._pay(lic.asset, amount)

@external
@view
def getOffer(offer_id: uint256) -> Offer:
    return self._offer(offer_id)

@external
@view
def getLicense(license_id: uint256) -> License:
    lic: License = self.licenses[license_id]
    assert lic.kind != 0, "unknown license"
    return lic

@external
@view
def hasAccess(asset: uint256, user: address, kind: uint8) -> bool:
    """
    @notice True when ``user`` owns ``asset`` or holds a valid license of ``kind``
            (0: of any kind). API access means prepaid calls are left.
    """
    assert kind <= PARTNERSHIP, "unknown license type"
    if staticcall Registry(REGISTRY).ownerOf(asset) == user:
        return True
    if (kind == ANY or kind == API) and self.apiCalls[asset][user] > 0:
        return True
    for k: uint8 in [FULL, LONG_TERM, PARTNERSHIP]:
        if (kind == ANY or kind == k) and self.accessUntil[asset][user][k] > block.timestamp:
            return True
    return False
