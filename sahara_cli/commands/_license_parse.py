"""The license commands' flags: which license type takes which, amounts, terms files.

Every check here runs before the command talks to the node, so a wrong combination
fails fast with exit status 2.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sahara_cli.errors import FileUnreadable, UsageError


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
KindOption = Annotated[
    LicenseType,
    typer.Option(
        "--type", help="License type: api, full, long-term or partnership.", show_default=False
    ),
]
PriceOption = Annotated[
    str | None,
    typer.Option(
        "--price",
        help="One-time price in SAH (full, long-term; the upfront fee of a partnership).",
        show_default=False,
    ),
]
PricePerCallOption = Annotated[
    str | None,
    typer.Option("--price-per-call", help="Price of one call in SAH (api).", show_default=False),
]
DurationOption = Annotated[
    str | None,
    typer.Option(
        "--duration",
        help="How long access lasts: 3600, 90m, 12h, 30d, 2w, 1y (long-term; optional "
        "for partnership).",
        show_default=False,
    ),
]
TermsOption = Annotated[
    Path | None,
    typer.Option(
        "--terms",
        help="Terms document of a partnership; its keccak256 hash goes on chain.",
        dir_okay=False,
        show_default=False,
    ),
]
ShareOption = Annotated[
    str | None,
    typer.Option(
        "--share",
        help="Revenue share the partner pays, as basis points (2000) or percent (20%).",
        show_default=False,
    ),
]
PartnerOption = Annotated[
    str | None,
    typer.Option(
        "--partner",
        help="Only this address or ID may accept the partnership (default: anyone).",
        show_default=False,
    ),
]
ExpiresOption = Annotated[
    str | None,
    typer.Option(
        "--expires",
        help="The offer can be bought for this long from now (chain time), e.g. 7d "
        "(default: until paused).",
        show_default=False,
    ),
]


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


def validate_offer(kind: LicenseType, given: dict[str, object | None]) -> None:
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


def amount(text: str, flag: str) -> int:
    """An amount of SAH in wei, with the flag named in the error."""
    from sahara_cli.node.client import parse_sah

    try:
        return parse_sah(text)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from None


def read_terms(path: Path) -> bytes:
    """The keccak256 hash of a partnership's terms document."""
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
