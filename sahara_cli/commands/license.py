"""sahara license: offer, buy, accept, meter and check licenses of assets.

The four license types of the Licensing contract, by their CLI names:

- ``api``: a price per call; the buyer prepays calls, the asset's meter records them,
  unused calls can be refunded;
- ``full``: one-time price, access for ever;
- ``long-term``: one-time price, access for a duration;
- ``partnership``: a terms document (its keccak256 hash goes on chain) and a revenue
  share, offered by the owner (to one partner or to anyone) and accepted by the partner.

Every command checks its flags before it talks to the node, so a wrong combination
fails fast with exit status 2; the contract stays the judge of everything else.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._protocol import (
    IdOption,
    PasswordFileOption,
    address_of,
    parse_bps,
    parse_duration,
    parse_id,
    protocol,
    resolve_asset,
    signer,
    table,
    tx_rows,
    when,
)
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import (
    FileUnreadable,
    NotPermitted,
    OfferClosed,
    ProtocolInsufficientFunds,
    ProtocolReverted,
    UsageError,
)

if TYPE_CHECKING:
    from sahara_cli.identity.keys import Signer
    from sahara_cli.protocol.client import License, Offer, Protocol, TxResult

app = typer.Typer(help="Offer, buy and check licenses of AI assets.", no_args_is_help=True)


class LicenseType(StrEnum):
    api = "api"
    full = "full"
    long_term = "long-term"
    partnership = "partnership"


class CheckType(StrEnum):
    any = "any"
    api = "api"
    full = "full"
    long_term = "long-term"
    partnership = "partnership"


OfferArg = Annotated[str, typer.Argument(help="Offer id (12 or #12).", show_default=False)]
LicenseArg = Annotated[str, typer.Argument(help="License id (12 or #12).", show_default=False)]
AssetArg = Annotated[
    str,
    typer.Argument(help="Asset id (12 or #12) or the content id it was registered with."),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation before paying.")
]


# -- helpers ---------------------------------------------------------------------------


def _sah(wei: int) -> str:
    from sahara_cli.node.client import format_sah

    return f"{format_sah(wei)} SAH"


def _amount(text: str, flag: str) -> int:
    from sahara_cli.node.client import parse_sah

    try:
        return parse_sah(text)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from None


def _now(proto: Protocol) -> int:
    """The latest block's timestamp: the chain's clock, not this machine's."""
    block = proto.node.call("eth_getBlockByNumber", "latest", False)
    return int(block["timestamp"], 16)


def _span(seconds: int) -> str:
    """A duration for people: 30d, 12h, 90m or seconds."""
    for unit, size in (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _offer_rows(offer: Offer) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "offer": offer.id,
        "asset": offer.asset,
        "type": offer.type,
        "price": _sah(offer.price) + (" per call" if offer.type == "api" else ""),
    }
    if offer.duration:
        rows["duration"] = _span(offer.duration)
    if offer.type == "partnership":
        rows["terms"] = offer.terms
        rows["revenue share"] = f"{offer.share_bps / 100:g}% ({offer.share_bps} bps)"
        rows["partner"] = offer.partner or "anyone"
    rows["valid until"] = when(offer.valid_until or None)
    rows["status"] = "paused" if offer.paused else "open"
    return rows


def _license_doc(lic: License, now: int) -> dict[str, Any]:
    """A license as JSON, with its times as UTC text and whether it is active ``now``."""
    doc = lic.to_dict()
    doc["start_utc"] = when(lic.start)
    doc["expiry_utc"] = when(lic.expiry)
    doc["active"] = _active(lic, now)
    return doc


def _active(lic: License, now: int) -> bool:
    if lic.type == "api":
        return lic.calls > 0
    return lic.expiry is None or lic.expiry > now


def _license_rows(lic: License, now: int) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "license": lic.id,
        "offer": lic.offer,
        "asset": lic.asset,
        "holder": lic.holder,
        "type": lic.type,
        "price": _sah(lic.price) + (" per call" if lic.type == "api" else ""),
        "start": when(lic.start),
    }
    if lic.type == "api":
        rows["calls left"] = lic.calls
        rows["calls used"] = lic.used
    else:
        rows["expiry"] = when(lic.expiry)
    if lic.type == "partnership":
        rows["terms"] = lic.terms
        rows["revenue share"] = f"{lic.share_bps / 100:g}% ({lic.share_bps} bps)"
    rows["status"] = "active" if _active(lic, now) else "inactive"
    return rows


def _write_result(
    st: AppState, data: dict[str, Any], rows: dict[str, Any], tx: TxResult, title: str
) -> None:
    data["transaction"] = tx.to_dict()
    st.output.result(data, table({**rows, **tx_rows(tx)}, title))


def _owner_check(proto: Protocol, asset_id: int, who: Signer, action: str) -> None:
    """A clear refusal before any gas is spent when ``who`` does not own the asset."""
    owner = proto.asset(asset_id).owner
    if owner.lower() != who.address.lower():
        raise NotPermitted(
            f"only the owner of asset {asset_id} ({owner}) can {action}; "
            f"{who.address} does not own it",
            hint="Sign with the owner's ID: --id NAME.",
        )


def _open_check(proto: Protocol, offer: Offer) -> None:
    """Refuse a paused or expired offer with a message that names it."""
    if offer.paused:
        raise OfferClosed(
            f"offer {offer.id} is paused by the owner of asset {offer.asset}",
            hint="Wait until the owner resumes it, or look for another offer with "
            "'sahara market list'.",
        )
    if offer.valid_until and _now(proto) >= offer.valid_until:
        raise OfferClosed(
            f"offer {offer.id} expired at {when(offer.valid_until)}",
            hint="Look for another offer with 'sahara market list'.",
        )


def _closed_again(exc: OfferClosed, offer: Offer) -> OfferClosed:
    """The contract's terse ``offer has expired`` with the offer's id and time."""
    message = f"offer {offer.id}: {exc.message}"
    if offer.valid_until and "expired" in exc.message:
        message = f"offer {offer.id} expired at {when(offer.valid_until)}"
    return OfferClosed(message, hint=exc.hint, details=exc.details)


def _funds_check(proto: Protocol, who: Signer, cost: int, what: str) -> None:
    balance = proto.node.balance(who.address, "pending")
    if balance < cost:
        raise ProtocolInsufficientFunds(
            f"{who.address} has {_sah(balance)}; {what} costs {_sah(cost)} plus gas"
        )


def _read_terms(path: Path) -> bytes:
    from sahara_cli.identity.keys import keccak256

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--terms: {path} does not exist") from None
    except OSError as exc:
        raise FileUnreadable(f"cannot read the terms file {path}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise UsageError(f"--terms: {path} is empty", hint="Write the partnership terms in it.")
    return keccak256(data)


# -- offers ----------------------------------------------------------------------------


_PARTNERSHIP_ONLY = ("{flag} is for partnership offers, not {name}", "Use --type partnership.")
#: What each flag means when it is given to a type that does not take it.
_MISPLACED = {
    "--price": (
        "an api offer is priced per call: use --price-per-call, not --price",
        "e.g. --price-per-call 0.001",
    ),
    "--price-per-call": ("--price-per-call is for api offers; a {name} offer takes --price", None),
    "--duration": (
        "a {name} license does not expire: --duration is for long-term and partnership offers",
        None,
    ),
    "--terms": _PARTNERSHIP_ONLY,
    "--share": _PARTNERSHIP_ONLY,
    "--partner": _PARTNERSHIP_ONLY,
}
#: What a type says when a flag it needs is missing.
_MISSING = {
    "--price-per-call": ("an api offer needs --price-per-call", "e.g. --price-per-call 0.001"),
    "--price": ("a {name} offer needs --price", "e.g. --price 10"),
    "--duration": ("a long-term offer needs --duration", "e.g. --duration 30d"),
    "--terms": ("a partnership offer needs --terms FILE (its keccak256 hash goes on chain)", None),
    "--share": (
        "a partnership offer needs --share (the partner's revenue share)",
        "e.g. --share 20% or --share 2000 (basis points)",
    ),
}
#: Per license type: the flags it takes, and those of them it needs.
_OFFER_FLAGS: dict[LicenseType, tuple[set[str], set[str]]] = {
    LicenseType.api: ({"--price-per-call"}, {"--price-per-call"}),
    LicenseType.full: ({"--price"}, {"--price"}),
    LicenseType.long_term: ({"--price", "--duration"}, {"--price", "--duration"}),
    LicenseType.partnership: (
        {"--price", "--duration", "--terms", "--share", "--partner"},
        {"--terms", "--share"},
    ),
}


def _validate_offer(kind: LicenseType, given: dict[str, object | None]) -> None:
    """Each license type takes its own flags; say which one is misplaced or missing."""
    allowed, required = _OFFER_FLAGS[kind]
    for flag, value in given.items():
        if value is not None and flag not in allowed:
            message, hint = _MISPLACED[flag]
            raise UsageError(message.format(flag=flag, name=kind.value), hint=hint)
    for flag in sorted(required, key=list(given).index):
        if given[flag] is None:
            message, hint = _MISSING[flag]
            raise UsageError(message.format(flag=flag, name=kind.value), hint=hint)


@app.command("offer")
def offer(
    asset: AssetArg,
    kind: Annotated[
        LicenseType,
        typer.Option(
            "--type", help="License type: api, full, long-term or partnership.", show_default=False
        ),
    ],
    price: Annotated[
        str | None,
        typer.Option(
            "--price",
            help="One-time price in SAH (full, long-term; the upfront fee of a partnership).",
            show_default=False,
        ),
    ] = None,
    price_per_call: Annotated[
        str | None,
        typer.Option(
            "--price-per-call", help="Price of one call in SAH (api).", show_default=False
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="How long access lasts: 3600, 90m, 12h, 30d, 2w, 1y (long-term; optional "
            "for partnership).",
            show_default=False,
        ),
    ] = None,
    terms: Annotated[
        Path | None,
        typer.Option(
            "--terms",
            help="Terms document of a partnership; its keccak256 hash goes on chain.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    share: Annotated[
        str | None,
        typer.Option(
            "--share",
            help="Revenue share the partner pays, as basis points (2000) or percent (20%).",
            show_default=False,
        ),
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner",
            help="Only this address or ID may accept the partnership (default: anyone).",
            show_default=False,
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="The offer can be bought for this long from now (chain time), e.g. 7d "
            "(default: until paused).",
            show_default=False,
        ),
    ] = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """List a license offer for an asset you own."""
    _validate_offer(
        kind,
        {
            "--price": price,
            "--price-per-call": price_per_call,
            "--duration": duration,
            "--terms": terms,
            "--share": share,
            "--partner": partner,
        },
    )
    if kind is LicenseType.api:
        wei = _amount(price_per_call or "", "--price-per-call")
    else:
        wei = _amount(price or "0", "--price")
    seconds = parse_duration(duration) if duration is not None else 0
    share_bps = parse_bps(share, "--share") if share is not None else 0
    if share is not None and share_bps == 0:
        raise UsageError("--share must be more than 0", hint="e.g. --share 20% or --share 2000")
    lifetime = parse_duration(expires) if expires is not None else None
    terms_hash = _read_terms(terms) if terms is not None else None
    st = state()
    partner_address = address_of(st, partner, "--partner") if partner is not None else None
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    who = signer(st, signer_name, password_file)
    _owner_check(proto, asset_id, who, "offer licenses for it")
    valid_until = _now(proto) + lifetime if lifetime is not None else 0
    with st.output.status("Listing the offer"):
        offer_id, tx = proto.offer(
            who,
            asset_id,
            kind.value,
            price=wei,
            duration=seconds,
            terms=terms_hash,
            share_bps=share_bps,
            partner=partner_address,
            valid_until=valid_until,
        )
        listed = proto.get_offer(offer_id)
    data: dict[str, Any] = {
        "offer_id": offer_id,
        "offer": listed.to_dict(),
        "valid_until_utc": when(listed.valid_until or None),
        "terms_file": str(terms) if terms is not None else None,
    }
    _write_result(st, data, _offer_rows(listed), tx, f"Listed offer {offer_id}")


@app.command("reprice")
def reprice(
    offer_arg: OfferArg,
    price: Annotated[
        str,
        typer.Option(
            "--price",
            help="New price in SAH (per call for api offers). Licenses sold keep theirs.",
            show_default=False,
        ),
    ],
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Change the price of an offer (licenses already sold keep their price)."""
    offer_id = parse_id(offer_arg, "offer id")
    wei = _amount(price, "--price")
    st = state()
    proto = protocol(st)
    before = proto.get_offer(offer_id)
    who = signer(st, signer_name, password_file)
    _owner_check(proto, before.asset, who, "reprice its offers")
    with st.output.status("Repricing the offer"):
        tx = proto.reprice(who, offer_id, wei)
        after = proto.get_offer(offer_id)
    data: dict[str, Any] = {
        "offer_id": offer_id,
        "old_price": str(before.price),
        "old_price_sah": _sah(before.price).removesuffix(" SAH"),
        "offer": after.to_dict(),
    }
    rows = {"old price": _sah(before.price), **_offer_rows(after)}
    _write_result(st, data, rows, tx, f"Repriced offer {offer_id}")


def _set_paused(offer_arg: str, paused: bool, signer_name: str | None, pw: Path | None) -> None:
    offer_id = parse_id(offer_arg, "offer id")
    st = state()
    proto = protocol(st)
    before = proto.get_offer(offer_id)
    who = signer(st, signer_name, pw)
    verb = "pause" if paused else "resume"
    _owner_check(proto, before.asset, who, f"{verb} its offers")
    with st.output.status(f"{verb.capitalize()} the offer"):
        tx = proto.set_paused(who, offer_id, paused)
        after = proto.get_offer(offer_id)
    data: dict[str, Any] = {
        "offer_id": offer_id,
        "paused": after.paused,
        "changed": before.paused != after.paused,
        "offer": after.to_dict(),
    }
    title = f"{'Paused' if paused else 'Resumed'} offer {offer_id}"
    _write_result(st, data, _offer_rows(after), tx, title)


@app.command("pause")
def pause(
    offer_arg: OfferArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Stop selling from an offer until it is resumed (licenses sold stay valid)."""
    _set_paused(offer_arg, True, signer_name, password_file)


@app.command("resume")
def resume(
    offer_arg: OfferArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Sell from a paused offer again."""
    _set_paused(offer_arg, False, signer_name, password_file)


# -- buying ----------------------------------------------------------------------------


@app.command("buy")
def buy(
    offer_arg: OfferArg,
    calls: Annotated[
        int | None,
        typer.Option(
            "--calls", help="Number of calls to prepay (api offers only).", show_default=False
        ),
    ] = None,
    yes: YesOption = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Buy a license from an offer, paying its price (per call times --calls for api)."""
    offer_id = parse_id(offer_arg, "offer id")
    if calls is not None and calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    st = state()
    proto = protocol(st)
    listed = proto.get_offer(offer_id)
    if listed.type == "partnership":
        raise UsageError(
            f"offer {offer_id} is a partnership: it is accepted, not bought",
            hint=f"Run 'sahara license accept {offer_id}' as the partner.",
        )
    if listed.type == "api" and calls is None:
        raise UsageError(
            f"offer {offer_id} is an api offer: say how many calls to prepay with --calls N"
        )
    if listed.type != "api" and calls is not None:
        raise UsageError(f"--calls is for api offers; offer {offer_id} is {listed.type}")
    _open_check(proto, listed)
    n = calls or 0
    cost = listed.price * n if listed.type == "api" else listed.price
    who = signer(st, signer_name, password_file)
    what = (
        f"{n} call{'s' if n != 1 else ''} at {_sah(listed.price)}"
        if listed.type == "api"
        else f"a {listed.type} license"
    )
    _funds_check(proto, who, cost, f"{what} from offer {offer_id}")
    st.confirm(
        f"Buy {what} to asset {listed.asset} from offer {offer_id} for {_sah(cost)}?", yes=yes
    )
    with st.output.status("Buying the license"):
        try:
            license_id, tx = proto.buy(who, offer_id, n, price=listed.price)
        except OfferClosed as exc:
            raise _closed_again(exc, listed) from None
        lic = proto.get_license(license_id)
        now = _now(proto)
    data: dict[str, Any] = {
        "license_id": license_id,
        "offer_id": offer_id,
        "cost": str(cost),
        "cost_sah": _sah(cost).removesuffix(" SAH"),
        "license": _license_doc(lic, now),
    }
    rows = {**_license_rows(lic, now), "paid": _sah(cost)}
    _write_result(st, data, rows, tx, f"Bought license {license_id}")


@app.command("accept")
def accept(
    offer_arg: OfferArg,
    yes: YesOption = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Accept a partnership offer: sign its terms on chain (and pay any upfront fee)."""
    offer_id = parse_id(offer_arg, "offer id")
    st = state()
    proto = protocol(st)
    listed = proto.get_offer(offer_id)
    if listed.type != "partnership":
        raise UsageError(
            f"offer {offer_id} is a {listed.type} offer: it is bought, not accepted",
            hint=f"Run 'sahara license buy {offer_id}'.",
        )
    _open_check(proto, listed)
    who = signer(st, signer_name, password_file)
    if listed.partner is not None and listed.partner.lower() != who.address.lower():
        raise NotPermitted(
            f"offer {offer_id} is offered to {listed.partner}, not to {who.address}",
            hint="Sign with the partner's ID: --id NAME.",
        )
    if listed.partner is not None and listed.sold:
        raise ProtocolReverted(f"partnership offer {offer_id} was already accepted")
    _funds_check(proto, who, listed.price, f"the upfront fee of offer {offer_id}")
    st.confirm(
        f"Accept partnership offer {offer_id} on asset {listed.asset}: terms {listed.terms}, "
        f"revenue share {listed.share_bps / 100:g}%, upfront fee {_sah(listed.price)}?",
        yes=yes,
    )
    with st.output.status("Accepting the partnership"):
        try:
            license_id, tx = proto.accept(who, offer_id, price=listed.price)
        except OfferClosed as exc:
            raise _closed_again(exc, listed) from None
        lic = proto.get_license(license_id)
        now = _now(proto)
    data: dict[str, Any] = {
        "license_id": license_id,
        "offer_id": offer_id,
        "cost": str(listed.price),
        "cost_sah": _sah(listed.price).removesuffix(" SAH"),
        "license": _license_doc(lic, now),
    }
    rows = {**_license_rows(lic, now), "paid": _sah(listed.price)}
    _write_result(st, data, rows, tx, f"Accepted partnership, license {license_id}")


# -- using a license -------------------------------------------------------------------


@app.command("meter")
def meter(
    license_arg: LicenseArg,
    calls: Annotated[
        int,
        typer.Option(
            "--calls",
            help="Number of calls to record (the asset's meter signs).",
            show_default=False,
        ),
    ],
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Record API calls made under a license; each call's price moves to the asset."""
    license_id = parse_id(license_arg, "license id")
    if calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    st = state()
    proto = protocol(st)
    lic = proto.get_license(license_id)
    if lic.type != "api":
        raise UsageError(f"license {license_id} is {lic.type}: only api licenses are metered")
    if calls > lic.calls:
        raise ProtocolReverted(
            f"license {license_id} has {lic.calls} prepaid call{'s' if lic.calls != 1 else ''} "
            f"left, fewer than {calls}"
        )
    who = signer(st, signer_name, password_file)
    meter_address = proto.asset(lic.asset).meter
    if meter_address.lower() != who.address.lower():
        raise NotPermitted(
            f"only the meter of asset {lic.asset} ({meter_address}) records its calls; "
            f"{who.address} is not it",
            hint="Sign with the meter's ID: --id NAME.",
        )
    with st.output.status("Recording calls"):
        tx = proto.meter(who, license_id, calls)
        after = proto.get_license(license_id)
        now = _now(proto)
    amount = calls * lic.price
    data: dict[str, Any] = {
        "license_id": license_id,
        "calls": calls,
        "amount": str(amount),
        "amount_sah": _sah(amount).removesuffix(" SAH"),
        "license": _license_doc(after, now),
    }
    rows = {"recorded": f"{calls} calls, {_sah(amount)}", **_license_rows(after, now)}
    _write_result(st, data, rows, tx, f"Metered license {license_id}")


@app.command("refund")
def refund(
    license_arg: LicenseArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Get back the price of an api license's unused calls (the holder signs)."""
    license_id = parse_id(license_arg, "license id")
    st = state()
    proto = protocol(st)
    lic = proto.get_license(license_id)
    if lic.type != "api":
        raise UsageError(f"license {license_id} is {lic.type}: only api licenses are refunded")
    if lic.calls == 0:
        raise ProtocolReverted(f"license {license_id} has no unused calls to refund")
    who = signer(st, signer_name, password_file)
    if lic.holder.lower() != who.address.lower():
        raise NotPermitted(
            f"only the holder of license {license_id} ({lic.holder}) can refund it",
            hint="Sign with the holder's ID: --id NAME.",
        )
    with st.output.status("Refunding unused calls"):
        amount, tx = proto.refund(who, license_id)
        after = proto.get_license(license_id)
        now = _now(proto)
    data: dict[str, Any] = {
        "license_id": license_id,
        "calls": lic.calls,
        "refunded": str(amount),
        "refunded_sah": _sah(amount).removesuffix(" SAH"),
        "license": _license_doc(after, now),
    }
    rows = {"refunded": f"{lic.calls} calls, {_sah(amount)}", **_license_rows(after, now)}
    _write_result(st, data, rows, tx, f"Refunded license {license_id}")


@app.command("settle")
def settle(
    license_arg: LicenseArg,
    revenue: Annotated[
        str,
        typer.Option(
            "--revenue",
            help="Revenue in SAH made with the asset; the partnership's share of it is paid.",
            show_default=False,
        ),
    ],
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Pay the agreed revenue share of a partnership license (the partner signs)."""
    from sahara_cli.protocol.client import BPS

    license_id = parse_id(license_arg, "license id")
    wei = _amount(revenue, "--revenue")
    st = state()
    proto = protocol(st)
    lic = proto.get_license(license_id)
    if lic.type != "partnership":
        raise UsageError(f"license {license_id} is {lic.type}: only partnerships are settled")
    amount = wei * lic.share_bps // BPS
    if amount == 0:
        raise UsageError(f"{_sah(wei)} of revenue at {lic.share_bps / 100:g}% is nothing to settle")
    who = signer(st, signer_name, password_file)
    if lic.holder.lower() != who.address.lower():
        raise NotPermitted(
            f"only the partner holding license {license_id} ({lic.holder}) settles it",
            hint="Sign with the partner's ID: --id NAME.",
        )
    _funds_check(proto, who, amount, f"the {lic.share_bps / 100:g}% share")
    with st.output.status("Settling the revenue share"):
        tx = proto.settle(who, license_id, wei)
    data: dict[str, Any] = {
        "license_id": license_id,
        "asset": lic.asset,
        "revenue": str(wei),
        "revenue_sah": _sah(wei).removesuffix(" SAH"),
        "share_bps": lic.share_bps,
        "amount": str(amount),
        "amount_sah": _sah(amount).removesuffix(" SAH"),
    }
    rows = {
        "license": license_id,
        "asset": lic.asset,
        "revenue": _sah(wei),
        "share": f"{lic.share_bps / 100:g}%",
        "paid": _sah(amount),
    }
    _write_result(st, data, rows, tx, f"Settled license {license_id}")


# -- reading ---------------------------------------------------------------------------


@app.command("show")
def show(license_arg: LicenseArg) -> None:
    """Show a license: its type, holder, price, expiry (UTC) and calls left and used."""
    license_id = parse_id(license_arg, "license id")
    st = state()
    proto = protocol(st)
    lic = proto.get_license(license_id)
    now = _now(proto)
    st.output.result(_license_doc(lic, now), table(_license_rows(lic, now), f"License {lic.id}"))


@app.command("list")
def list_(
    mine: Annotated[
        bool, typer.Option("--mine", help="Only licenses held by your ID (see --id).")
    ] = False,
    asset: Annotated[
        str | None,
        typer.Option(
            "--asset", help="Only licenses of this asset (id or content id).", show_default=False
        ),
    ] = None,
    holder: Annotated[
        str | None,
        typer.Option(
            "--holder", help="Only licenses held by this address or ID.", show_default=False
        ),
    ] = None,
    id_name: Annotated[
        str | None,
        typer.Option(
            "--id", help="The ID --mine means (default: the default ID).", show_default=False
        ),
    ] = None,
) -> None:
    """List licenses sold on this chain (from the local index of chain events)."""
    if mine and holder is not None:
        raise UsageError("give --mine or --holder, not both")
    if id_name is not None and not mine:
        raise UsageError("--id names whose licenses --mine lists: give --mine too")
    st = state()
    who: str | None = None
    if mine:
        who = st.keystore().resolve(id_name).address
    elif holder is not None:
        who = address_of(st, holder, "--holder")
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset) if asset is not None else None
    from sahara_cli.protocol.index import ProtocolIndex

    with (
        st.output.status("Reading licenses"),
        ProtocolIndex.for_home(proto, st.home.require().root) as index,
    ):
        found = index.licenses(holder=who, asset=asset_id)
        now = index.now  # the head the index was brought up to
    data = {
        "holder": who,
        "asset": asset_id,
        "count": len(found),
        "licenses": [_license_doc(lic, now) for lic in found],
    }

    def render(console: Console) -> None:
        if not found:
            console.print("No licenses.")
            return
        grid = Table(title="Licenses", title_justify="left")
        for column in ("id", "asset", "type", "holder", "price", "expiry / calls", "status"):
            grid.add_column(column, no_wrap=column != "holder", overflow="fold")
        for lic in found:
            use = f"{lic.calls} left, {lic.used} used" if lic.type == "api" else when(lic.expiry)
            grid.add_row(
                str(lic.id),
                str(lic.asset),
                lic.type,
                lic.holder,
                _sah(lic.price),
                use,
                "active" if _active(lic, now) else "inactive",
            )
        console.print(grid)

    st.output.result(data, render)


@app.command("check")
def check(
    asset: AssetArg,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Address or ID to check (default: the default ID).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        CheckType,
        typer.Option("--type", help="License type that must grant access (any: of any type)."),
    ] = CheckType.any,
) -> None:
    """Say whether a user may use an asset: it owns it or holds a valid license.

    Prints access true or false, and the expiry of time-limited access.

    The exit status is 0 whether access is true or false:
    scripts read "access" from the --json document.
    """
    from sahara_cli.protocol.client import FOREVER, LICENSE_TYPES

    st = state()
    address = address_of(st, user, "--user")
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    owner = proto.asset(asset_id).owner.lower() == address.lower()
    access = proto.has_access(asset_id, address, kind.value)
    data: dict[str, Any] = {
        "asset": asset_id,
        "user": address,
        "type": kind.value,
        "access": access,
        "owner": owner,
    }
    if kind in (CheckType.any, CheckType.api):
        data["calls_left"] = int(proto.licensing.call("apiCalls", asset_id, address))
    timed = [kind.value] if kind not in (CheckType.any, CheckType.api) else []
    if kind is CheckType.any:
        data["types"] = {name: proto.has_access(asset_id, address, name) for name in LICENSE_TYPES}
        timed = [name for name in LICENSE_TYPES if name != "api" and data["types"][name]]
    if kind is not CheckType.api:
        # The furthest expiry among the time-limited accesses in question; for "any",
        # among the types that grant access now. None when there is no such access.
        until = max((proto.access_until(asset_id, address, name) for name in timed), default=0)
        data["expiry"] = None if until in (0, FOREVER) else until
        data["expiry_utc"] = None if until == 0 else when(None if until == FOREVER else until)

    def render(console: Console) -> None:
        scope = "any license" if kind is CheckType.any else f"a {kind.value} license"
        verdict = "[green]yes[/]" if access else "[red]no[/]"
        console.print(f"access: {verdict}  [dim]asset {asset_id}, {scope}, {address}[/]")
        if owner:
            console.print("  the user owns the asset")
        if data.get("calls_left"):
            console.print(f"  prepaid api calls left: {data['calls_left']}")
        if data.get("types"):
            granted = [n for n, ok in data["types"].items() if ok]
            if granted:
                console.print(f"  granted by: {', '.join(granted)}")
        if data.get("expiry_utc"):
            console.print(f"  until: {data['expiry_utc']}")

    st.output.result(data, render)
