"""What each page's blocks expect to find before they run: files in the working
directory (besides ``templates``, the project's), and commands (not shown on the page)
that set up the home.

Unless a page starts a node itself (a ``sahara node start`` line that runs), the test
makes the page's home with ``sahara init`` and starts a dev node in it first, so the
home's ID ``main`` is the funded validator. ``PASSWORD`` is the password of the page's
IDs, as ``SAHARA_PASSWORD`` is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: A numeric table (hourly loads of a building), as the fixed-point runner trains on.
LOAD_CSV = (Path(__file__).resolve().parents[2] / "sahara_cli/samples/sensors.csv").read_text()
REVIEWS_CSV = "id,text,label\n1,great service,1\n2,late delivery and no refund,0\n"
NOTES = {
    "notes/refunds.md": "# Refunds\n\nLate deliveries are refunded in full within 14 days.\n",
    "notes/shipping.md": "# Shipping\n\nParcels leave the warehouse every weekday at noon.\n",
}
ORDER_JSON = """\
{"types": {"EIP712Domain": [{"name": "name", "type": "string"},
                            {"name": "chainId", "type": "uint256"}],
           "Order": [{"name": "item", "type": "string"},
                     {"name": "amount", "type": "uint256"}]},
 "primaryType": "Order",
 "domain": {"name": "Sahara", "chainId": 31337},
 "message": {"item": "reviews", "amount": 3}}
"""
#: The standard test mnemonic (its first account is the well-known 0xf39F...2266).
WORDS = "test test test test test test test test test test test junk\n"
#: Dev account 9 of that mnemonic: a key whose address is known.
KEY_HEX = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6\n"
QUESTION = "What do our notes say about refunds?\n"
#: A file written by the test as a keystore v3 file (as geth writes one) of KEY_HEX
#: under the page's password.
GETH_KEYSTORE = "<keystore v3 of KEY_HEX>"


@dataclass(frozen=True)
class PageSetup:
    files: dict[str, str] = field(default_factory=dict)
    before: tuple[str, ...] = ()  # shell commands run after the node starts


PAGES: dict[str, PageSetup] = {
    "README.md": PageSetup(
        files={
            "geth-key.json": GETH_KEYSTORE,
            "order.json": ORDER_JSON,
            "reviews.csv": REVIEWS_CSV,
            "load.csv": LOAD_CSV,
            **NOTES,
        },
    ),
    "cli.md": PageSetup(files={"reviews.csv": REVIEWS_CSV, "q.txt": QUESTION, **NOTES}),
    "identity.md": PageSetup(files={"words.txt": WORDS, "key.hex": KEY_HEX}),
    "protocol.md": PageSetup(
        files={"reviews.csv": REVIEWS_CSV, "model.gguf": "GGUF" + "0" * 4096},
        before=(
            "sahara id create bob",
            "sahara id create carol",
            "sahara id create dana",
            *(
                f'sahara tx send --to "$(sahara --json id show {name} --no-chain | jq -r .address)"'
                " --value 5"
                for name in ("bob", "carol", "dana")
            ),
        ),
    ),
    "compute.md": PageSetup(files=dict(NOTES)),
    "vault.md": PageSetup(
        files={
            "reviews.csv": REVIEWS_CSV,
            **{k.replace("notes/", "corpus/"): v for k, v in NOTES.items()},
        }
    ),
    "agents.md": PageSetup(
        files={"question.txt": QUESTION, **NOTES}, before=("sahara model demo",)
    ),
}
