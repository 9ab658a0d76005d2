"""The dev-chain commands of ``sahara node``: ``accounts`` (the funded test accounts) and
``fund`` (SAH for an address or ID from a dev account; refused on other chains)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sahara_cli.commands._output import returns
from sahara_cli.commands._state import state


@returns("sahara_cli.node.wallet:Funding")
def fund(
    address: Annotated[
        str, typer.Argument(help="Address or Sahara ID name to fund.", show_default=False)
    ],
    amount: Annotated[str, typer.Argument(help="SAH to send, e.g. 100 or 0.5.")],
) -> None:
    """Send SAH to ADDRESS (or an ID) from a dev account; refused on a non-dev chain."""
    from sahara_cli.commands._protocol import address_of, table, tx_rows
    from sahara_cli.node import wallet
    from sahara_cli.node.client import parse_sah
    from sahara_cli.node.process import require_reachable

    st = state()
    to = address_of(st, address, "ADDRESS")
    value = parse_sah(amount)
    cfg = st.config().config.node
    client = require_reachable(cfg.rpc_url, cfg.timeout)
    with st.output.status(f"Funding {to}") as progress:
        funded = wallet.fund(client, to, value, progress=progress)
    rows = {
        "funded": funded.to,
        "amount": f"{funded.amount_sah} SAH",
        "from": f"{funded.funder} (dev account)",
        "balance": f"{funded.balance_sah} SAH",
        **tx_rows(funded.tx),
    }

    def render(console: Console) -> None:
        table(rows)(console)

    st.output.result(funded, render)


@returns("sahara_cli.node.results:DevAccounts")
def accounts() -> None:
    """The 10 funded development accounts (addresses and private keys), as anvil prints them."""
    from sahara_cli.node.genesis import dev_accounts

    st = state()
    info = dev_accounts()

    def render(console: Console) -> None:
        table = Table(title=f"dev accounts (mnemonic: {info.mnemonic})", title_justify="left")
        table.add_column("#")
        table.add_column("address", no_wrap=True)
        table.add_column("private key", no_wrap=True)
        for row in info.accounts:
            table.add_row(str(row.index), row.address, row.private_key)
        console.print(table)
        console.print(
            "[yellow]These keys are public knowledge: never use them on a real network.[/]"
        )

    st.output.result(info, render)
