"""sahara: a local-first toolchain for the Sahara AI platform.

The package is a library first; ``sahara_cli.commands`` is a thin CLI on top. The names
below are its public API, documented in ``docs/sdk.md``: import them from here
(``from sahara_cli import KeyStore``). They stay; the modules they live in may move.

Importing this module must stay cheap: it is on the path of ``sahara --version``. Each
name is imported on first use (module ``__getattr__``), so ``import sahara_cli`` loads
nothing else.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it, and its name there when that differs
#: (internal paths: they may change).
_EXPORTS: dict[str, str] = {
    # errors, home and config
    "SaharaError": "sahara_cli.errors",
    "Home": "sahara_cli.home",
    "resolve_home": "sahara_cli.home",
    "load_config": "sahara_cli.config",
    # identity
    "KeyStore": "sahara_cli.identity.store",
    "Signer": "sahara_cli.identity.keys",
    # node and wallet
    "NodeClient": "sahara_cli.node.client",
    "dev_node": "sahara_cli.node.rpc.testing",
    "get_balance": "sahara_cli.node.wallet:balance",
    "send_transaction": "sahara_cli.node.wallet:send",
    # vault
    "open_vault": "sahara_cli.vault.backends",
    "Holder": "sahara_cli.vault.core",
    "AddOptions": "sahara_cli.vault.publish",
    "Registration": "sahara_cli.vault.publish",
    "add_to_vault": "sahara_cli.vault.publish:add",
    "search_vault": "sahara_cli.vault.search",
    "get_from_vault": "sahara_cli.vault.licensed:get",
    "Recipient": "sahara_cli.vault.sharing",
    "share_from_vault": "sahara_cli.vault.sharing:share",
    # protocol: licensing, revenue, events
    "Protocol": "sahara_cli.protocol.client",
    "quote_license": "sahara_cli.protocol.licensing:preflight_buy",
    "buy_license": "sahara_cli.protocol.licensing:buy",
    "check_access": "sahara_cli.protocol.licensing",
    "claim_revenue": "sahara_cli.protocol.attribution:claim",
    "EventQuery": "sahara_cli.protocol.events",
    "find_events": "sahara_cli.protocol.events",
    # agents
    "load_spec": "sahara_cli.agent.spec",
    "ModelStore": "sahara_cli.agent.runners.model_store",
    "write_tiny_gguf": "sahara_cli.agent.runners.tiny_models",
    "open_agent": "sahara_cli.agent.brain",
}

__all__ = [
    "AddOptions",
    "EventQuery",
    "Holder",
    "Home",
    "KeyStore",
    "ModelStore",
    "NodeClient",
    "Protocol",
    "Recipient",
    "Registration",
    "SaharaError",
    "Signer",
    "__version__",
    "add_to_vault",
    "buy_license",
    "check_access",
    "claim_revenue",
    "dev_node",
    "find_events",
    "get_balance",
    "get_from_vault",
    "load_config",
    "load_spec",
    "open_agent",
    "open_vault",
    "quote_license",
    "resolve_home",
    "search_vault",
    "send_transaction",
    "share_from_vault",
    "write_tiny_gguf",
]

# Not typing.TYPE_CHECKING: importing typing would cost `sahara --version` a few ms.
# Type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ below
    from typing import Any

    from sahara_cli.agent.brain import open_agent
    from sahara_cli.agent.runners.model_store import ModelStore
    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf
    from sahara_cli.agent.spec import load_spec
    from sahara_cli.config import load_config
    from sahara_cli.errors import SaharaError
    from sahara_cli.home import Home, resolve_home
    from sahara_cli.identity.keys import Signer
    from sahara_cli.identity.store import KeyStore
    from sahara_cli.node.client import NodeClient
    from sahara_cli.node.rpc.testing import dev_node
    from sahara_cli.node.wallet import balance as get_balance
    from sahara_cli.node.wallet import send as send_transaction
    from sahara_cli.protocol.attribution import claim as claim_revenue
    from sahara_cli.protocol.client import Protocol
    from sahara_cli.protocol.events import EventQuery, find_events
    from sahara_cli.protocol.licensing import buy as buy_license
    from sahara_cli.protocol.licensing import check_access
    from sahara_cli.protocol.licensing import preflight_buy as quote_license
    from sahara_cli.vault.backends import open_vault
    from sahara_cli.vault.core import Holder
    from sahara_cli.vault.licensed import get as get_from_vault
    from sahara_cli.vault.publish import AddOptions, Registration
    from sahara_cli.vault.publish import add as add_to_vault
    from sahara_cli.vault.search import search_vault
    from sahara_cli.vault.sharing import Recipient
    from sahara_cli.vault.sharing import share as share_from_vault


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sahara_cli' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
