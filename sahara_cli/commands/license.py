"""sahara license: offer, buy, accept, meter and check licenses of assets.

The four license types of the Licensing contract, by their CLI names:

- ``api``: a price per call; the buyer prepays calls, the asset's meter records them,
  unused calls can be refunded;
- ``full``: one-time price, access for ever;
- ``long-term``: one-time price, access for a duration;
- ``partnership``: a terms document (its keccak256 hash goes on chain) and a revenue
  share, offered by the owner (to one partner or to anyone) and accepted by the partner.

Every command checks its flags before it talks to the node, so a wrong combination
fails fast with exit status 2; the workflows of :mod:`sahara_cli.protocol.licensing`
check the chain before they sign, and the contract stays the judge of everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sahara_cli.commands import _license_read
from sahara_cli.commands._license_parse import (
    AssetArg,
    DurationOption,
    ExpiresOption,
    KindOption,
    LicenseArg,
    LicenseType,
    OfferArg,
    PartnerOption,
    PriceOption,
    PricePerCallOption,
    ShareOption,
    TermsOption,
    YesOption,
    amount,
    read_terms,
    validate_offer,
)
from sahara_cli.commands._license_view import license_rows, offer_rows, sah
from sahara_cli.commands._output import returns
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
)
from sahara_cli.commands._state import AppState, state
from sahara_cli.errors import UsageError

if TYPE_CHECKING:
    from sahara_cli.results import Result, Transaction

app = typer.Typer(help="Offer, buy and check licenses of AI assets.", no_args_is_help=True)
_RESULTS = "sahara_cli.protocol.license_results"


def _write(st: AppState, result: Result, rows: dict[str, Any], tx: Transaction, title: str) -> None:
    st.output.result(result, table({**rows, **tx_rows(tx)}, title))


# -- offers ----------------------------------------------------------------------------


@app.command("offer")
@returns(f"{_RESULTS}:OfferResult")
def offer(
    asset: AssetArg,
    kind: KindOption,
    price: PriceOption = None,
    price_per_call: PricePerCallOption = None,
    duration: DurationOption = None,
    terms: TermsOption = None,
    share: ShareOption = None,
    partner: PartnerOption = None,
    expires: ExpiresOption = None,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """List a license offer for an asset you own."""
    from sahara_cli.protocol.licensing import create_offer

    given: dict[str, object | None] = {
        "--price": price,
        "--price-per-call": price_per_call,
        "--duration": duration,
    }
    given |= {"--terms": terms, "--share": share, "--partner": partner}
    validate_offer(kind, given)
    if kind is LicenseType.api:
        wei = amount(price_per_call or "", "--price-per-call")
    else:
        wei = amount(price or "0", "--price")
    seconds = parse_duration(duration) if duration is not None else 0
    share_bps = parse_bps(share, "--share") if share is not None else 0
    if share is not None and share_bps == 0:
        raise UsageError("--share must be more than 0", hint="e.g. --share 20% or --share 2000")
    lifetime = parse_duration(expires) if expires is not None else None
    terms_hash = read_terms(terms) if terms is not None else None
    st = state()
    partner_address = address_of(st, partner, "--partner") if partner is not None else None
    proto = protocol(st)
    asset_id = resolve_asset(proto, asset)
    who = signer(st, signer_name, password_file)
    with st.output.status("Listing the offer"):
        listed = create_offer(
            proto,
            who,
            asset_id,
            kind.value,
            price=wei,
            duration=seconds,
            terms=terms_hash,
            share_bps=share_bps,
            partner=partner_address,
            lifetime=lifetime,
            terms_file=terms,
        )
    _write(st, listed, offer_rows(listed), listed.tx, f"Listed offer {listed.offer_id}")


@app.command("reprice")
@returns(f"{_RESULTS}:RepriceResult")
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
    from sahara_cli.protocol import licensing

    offer_id = parse_id(offer_arg, "offer id")
    wei = amount(price, "--price")
    st = state()
    proto = protocol(st)
    proto.get_offer(offer_id)  # an unknown offer fails before the password is asked
    who = signer(st, signer_name, password_file)
    with st.output.status("Repricing the offer"):
        done = licensing.reprice(proto, who, offer_id, wei)
    rows = {"old price": sah(done.old_price_wei), **offer_rows(done)}
    _write(st, done, rows, done.tx, f"Repriced offer {offer_id}")


def _set_paused(offer_arg: str, paused: bool, signer_name: str | None, pw: Path | None) -> None:
    from sahara_cli.protocol.licensing import set_paused

    offer_id = parse_id(offer_arg, "offer id")
    st = state()
    proto = protocol(st)
    proto.get_offer(offer_id)
    who = signer(st, signer_name, pw)
    with st.output.status(f"{'Pause' if paused else 'Resume'} the offer"):
        done = set_paused(proto, who, offer_id, paused)
    title = f"{'Paused' if paused else 'Resumed'} offer {offer_id}"
    _write(st, done, offer_rows(done), done.tx, title)


@app.command("pause")
@returns(f"{_RESULTS}:PauseResult")
def pause(
    offer_arg: OfferArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Stop selling from an offer until it is resumed (licenses sold stay valid)."""
    _set_paused(offer_arg, True, signer_name, password_file)


@app.command("resume")
@returns(f"{_RESULTS}:PauseResult")
def resume(
    offer_arg: OfferArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Sell from a paused offer again."""
    _set_paused(offer_arg, False, signer_name, password_file)


# -- buying ----------------------------------------------------------------------------


@app.command("buy")
@returns(f"{_RESULTS}:PurchaseResult")
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
    """Buy a license from an offer, paying its price (per call times --calls for api).

    Buying a license to your own asset, or one you hold already and that still grants
    access, is warned of first; without a terminal it needs --yes.
    """
    from sahara_cli.errors import ConfirmationRequired
    from sahara_cli.identity.passwords import why_no_prompt
    from sahara_cli.protocol import licensing
    from sahara_cli.protocol.guardrails import purchase_warnings

    offer_id = parse_id(offer_arg, "offer id")
    if calls is not None and calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    st = state()
    proto = protocol(st)
    priced = licensing.prepare_buy(proto, offer_id, calls)
    warnings = purchase_warnings(proto, priced, address_of(st, signer_name))
    if warnings and not yes and (st.json or why_no_prompt(no_prompt=st.no_prompt)):
        raise ConfirmationRequired(f"{warnings[0]}; pass --yes to buy anyway")  # nobody to ask
    for warning in warnings:
        st.output.warn(warning)
    who = signer(st, signer_name, password_file)
    what = f"{priced.summary} from offer {offer_id}"
    licensing.preflight_funds(proto, who.address, priced.cost_wei, what)
    st.confirm(
        f"Buy {priced.summary} to asset {priced.asset_id} from offer {offer_id} "
        f"for {sah(priced.cost_wei)}{' anyway' if warnings else ''}?",
        yes=yes,
    )
    with st.output.status("Buying the license"):
        bought = licensing.buy(proto, who, priced).model_copy(update={"warnings": warnings})
    rows = {**license_rows(bought), "paid": sah(bought.cost_wei)}
    _write(st, bought, rows, bought.tx, f"Bought license {bought.license_id}")


@app.command("accept")
@returns(f"{_RESULTS}:PurchaseResult")
def accept(
    offer_arg: OfferArg,
    yes: YesOption = False,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Accept a partnership offer: sign its terms on chain (and pay any upfront fee)."""
    from sahara_cli.protocol import licensing

    offer_id = parse_id(offer_arg, "offer id")
    st = state()
    proto = protocol(st)
    priced, listed = licensing.prepare_accept(proto, offer_id)
    who = signer(st, signer_name, password_file)
    licensing.check_partner(listed, who.address)
    licensing.preflight_funds(proto, who.address, priced.cost_wei, priced.summary)
    st.confirm(
        f"Accept partnership offer {offer_id} on asset {listed.asset}: terms {listed.terms}, "
        f"revenue share {listed.share_bps / 100:g}%, upfront fee {sah(listed.price)}?",
        yes=yes,
    )
    with st.output.status("Accepting the partnership"):
        accepted = licensing.accept(proto, who, priced)
    rows = {**license_rows(accepted), "paid": sah(accepted.cost_wei)}
    _write(st, accepted, rows, accepted.tx, f"Accepted partnership, license {accepted.license_id}")


# -- using a license -------------------------------------------------------------------


@app.command("meter")
@returns(f"{_RESULTS}:MeterResult")
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
    from sahara_cli.protocol import licensing

    license_id = parse_id(license_arg, "license id")
    if calls < 1:
        raise UsageError(f"--calls must be at least 1, got {calls}")
    st = state()
    proto = protocol(st)
    licensing.check_meterable(proto.get_license(license_id), calls)
    who = signer(st, signer_name, password_file)
    with st.output.status("Recording calls"):
        done = licensing.meter(proto, who, license_id, calls)
    rows = {"recorded": f"{calls} calls, {sah(done.amount_wei)}", **license_rows(done)}
    _write(st, done, rows, done.tx, f"Metered license {license_id}")


@app.command("refund")
@returns(f"{_RESULTS}:RefundResult")
def refund(
    license_arg: LicenseArg,
    signer_name: IdOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Get back the price of an api license's unused calls (the holder signs)."""
    from sahara_cli.protocol import licensing

    license_id = parse_id(license_arg, "license id")
    st = state()
    proto = protocol(st)
    lic = proto.get_license(license_id)
    licensing.check_refundable(lic)
    who = signer(st, signer_name, password_file)
    with st.output.status("Refunding unused calls"):
        done = licensing.refund(proto, who, license_id)
    rows = {"refunded": f"{lic.calls} calls, {sah(done.refunded_wei)}", **license_rows(done)}
    _write(st, done, rows, done.tx, f"Refunded license {license_id}")


@app.command("settle")
@returns(f"{_RESULTS}:SettleResult")
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
    from sahara_cli.protocol import licensing

    license_id = parse_id(license_arg, "license id")
    wei = amount(revenue, "--revenue")
    st = state()
    proto = protocol(st)
    licensing.check_settleable(proto.get_license(license_id), wei)
    who = signer(st, signer_name, password_file)
    with st.output.status("Settling the revenue share"):
        done = licensing.settle(proto, who, license_id, wei)
    rows = {
        "license": license_id,
        "asset": done.asset_id,
        "revenue": sah(wei),
        "share": f"{done.share_bps / 100:g}%",
        "paid": sah(done.amount_wei),
    }
    _write(st, done, rows, done.tx, f"Settled license {license_id}")


# -- reading ---------------------------------------------------------------------------


@app.command("show")
@returns(f"{_RESULTS}:LicenseInfo")
def show(license_arg: LicenseArg) -> None:
    """Show a license: its type, holder, price, expiry (UTC) and calls left and used."""
    from sahara_cli.protocol.licensing import show_license

    license_id = parse_id(license_arg, "license id")
    st = state()
    lic = show_license(protocol(st), license_id)
    st.output.result(lic, table(license_rows(lic), f"License {license_id}"))


app.command("list")(_license_read.list_)
app.command("check")(_license_read.check)
