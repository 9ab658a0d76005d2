"""Who a person means: an address (``0x...``) or the name of one of their Sahara IDs.

Every option and argument that takes an address (``tx send --to``, ``balance``,
``node fund``, ``--owner``, ``--holder``, ``--partner``, ``--meter``, ``--contributor``...)
reads it with :func:`resolve_address`, so an ID name works wherever an address does and
a malformed address is reported as one (``identity.bad_address``), never as a missing ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from sahara_cli.errors import AddressInvalid, IdentityNotFound, SecretInvalid

if TYPE_CHECKING:
    from sahara_cli.identity.store import KeyStore

_BARE_ADDRESS = re.compile(r"^[0-9a-fA-F]{40}$")


def resolve_address(
    text: str | None, what: str = "address", *, keystore: Callable[[], KeyStore]
) -> str:
    """The EIP-55 address ``text`` stands for; ``None`` is the default ID's.

    - ``0x`` and 40 hex digits: that address (EIP-55 checked when mixed case).
    - Other text starting with ``0x`` (``0x123``): :class:`AddressInvalid`, unless an ID
      has that very name.
    - Anything else: the ID of that name; 40 hex digits without ``0x``, or text that
      cannot be an ID name, is :class:`AddressInvalid`; a possible name that no ID has is
      :class:`IdentityNotFound` naming both readings.

    ``keystore`` is called only when a name must be looked up, so a plain address needs
    no home. ``what`` names the input in errors (``--to``, ``ADDRESS``...).
    """
    from sahara_cli.identity.keys import is_address, looks_like_address, parse_address
    from sahara_cli.identity.store import check_name

    if text is None:
        return keystore().resolve(None).address
    value = text.strip()
    if looks_like_address(value):
        if is_address(value) or is_address("0x" + value[2:]):
            return parse_address(value, what)
        store = keystore()
        if value in store.names():
            return store.get(value).address
        return parse_address(value, what)  # raises: not 0x and 40 hex digits
    store = keystore()
    try:
        check_name(value)
    except SecretInvalid:  # identity.bad_name: the text is neither reading
        raise AddressInvalid(
            f"{what} {text!r} is neither an address (0x and 40 hex digits) nor an ID name"
        ) from None
    if value in store.names():
        return store.get(value).address
    if _BARE_ADDRESS.match(value):
        raise AddressInvalid(
            f"{what} {text!r} is not an address: it lacks the 0x prefix",
            hint=f"Write it as 0x{value}.",
        )
    names = store.names()
    known = f"your IDs: {', '.join(names)}" if names else "there is no Sahara ID yet"
    raise IdentityNotFound(
        f"{what} {text!r} is neither an address nor the name of a Sahara ID",
        hint=f"Give an address (0x and 40 hex digits) or an ID name ({known}).",
    )
