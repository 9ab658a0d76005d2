"""Set-up for the app walk's samples of 'agent publish' and 'agent key': an agent on a
tiny GGUF in the walk's home, whose default ID is funded on the walk's dev node."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_agents = itertools.count(1)


def _default_address(home: Path) -> str:
    from sahara_cli.config import load_config
    from sahara_cli.home import Home
    from sahara_cli.identity.store import KeyStore

    h = Home(home)
    store = KeyStore(
        h.keystore_dir,
        config_path=h.config_file,
        default=load_config(h.config_file).config.identity.default,
    )
    return store.resolve(None).address


def walk_agent(tmp: Path) -> str:
    """A fresh agent in ``tmp/home`` on a tiny model; the home's ID gets funds."""
    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf
    from sahara_cli.agent.spec import AgentSpec, AgentStore
    from sahara_cli.node.client import NodeClient

    home = tmp / "home"
    model = write_tiny_gguf(tmp / "walk.gguf", seed=0)
    name = f"walk{next(_agents)}"
    AgentStore(home).save(AgentSpec(name=name, model={"name": str(model)}))  # type: ignore[arg-type]
    client = NodeClient(os.environ["SAHARA_NODE_RPC_URL"])
    client.call("sahara_dev_setBalance", _default_address(home), hex(10**20))
    return name


def publish_args(tmp: Path) -> list[str]:
    return ["agent", "publish", walk_agent(tmp), "--price-per-call", "0.001"]


def key_args(tmp: Path) -> list[str]:
    """Publishes an agent in-process first: a key is for a published agent."""
    from typer.testing import CliRunner

    from sahara_cli.commands.main import run

    name = walk_agent(tmp)
    with CliRunner().isolation() as (_out, err, _):
        code = run(["--json", "--no-prompt", "agent", "publish", name, "--price-per-call", "0"])
        assert code == 0, err.getvalue().decode()
    return ["agent", "key", name, "--ttl", "1h"]
