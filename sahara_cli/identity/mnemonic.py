"""BIP-39 mnemonics and BIP-32/44 derivation (eth-account's audited-by-use code).

Imported only when a mnemonic is involved: eth-account takes close to a second to load.
"""

from __future__ import annotations

import re

from sahara_cli.errors import SecretInvalid

DEFAULT_PATH = "m/44'/60'/0'/0/0"
_PATH = re.compile(r"^m(/[0-9]+'?)+$")
WORD_COUNTS = (12, 15, 18, 21, 24)


def check_path(path: str) -> str:
    if not _PATH.match(path):
        raise SecretInvalid(
            f"invalid derivation path {path!r}",
            hint="Use the BIP-32 form, e.g. m/44'/60'/0'/0/0.",
            code="identity.bad_path",
        )
    return path


def generate(words: int = 12) -> str:
    if words not in WORD_COUNTS:
        raise SecretInvalid(f"a mnemonic has 12, 15, 18, 21 or 24 words, not {words}")
    from eth_account.hdaccount import generate_mnemonic
    from eth_account.types import Language

    return generate_mnemonic(words, Language.ENGLISH)


def derive(phrase: str, path: str = DEFAULT_PATH, passphrase: str = "") -> bytes:
    """The private key at ``path`` of the wallet that ``phrase`` seeds."""
    check_path(path)
    normalized = " ".join(phrase.split())
    count = len(normalized.split())
    if count not in WORD_COUNTS:
        raise SecretInvalid(f"a mnemonic has 12, 15, 18, 21 or 24 words; this one has {count}")
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    try:
        seed = seed_from_mnemonic(normalized, passphrase)
    except Exception as exc:  # eth-utils ValidationError, or language detection failures
        raise SecretInvalid(
            "not a valid BIP-39 mnemonic (unknown word or bad checksum)",
            hint="Check the spelling and order of the words.",
        ) from exc
    return key_from_seed(seed, path)
