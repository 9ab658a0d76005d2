"""Walk the whole Typer app: every command has help, and every command speaks JSON.

A new command fails this test until it has help text for itself and each option, and
an entry in SAMPLES showing that ``--json`` gives exactly one JSON document on stdout
(or, on failure, a JSON error on stderr and nothing on stdout).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import typer

from sahara_cli.commands.main import app
from sahara_cli.commands.schema import json_schema, leaves, result_model
from sahara_cli.identity import Signer
from tests.agent_models import stored_model, tiny_gguf_at
from tests.cli import agent_serve_samples
from tests.compute.learning import learning_agent
from tests.conftest import PASSWORD, TEST_KEY_0, Invoke


def walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        yield path, command
        for name, sub in sorted(subcommands.items()):
            yield from walk(sub, (*path, name))
    else:
        yield path, command


ROOT = typer.main.get_command(app)
LEAF_COMMANDS = dict(leaves(ROOT))
COMMANDS = [(path, cmd) for path, cmd in walk(ROOT)]
LEAVES = [path for path, cmd in COMMANDS if not getattr(cmd, "commands", None)]


def typed_data_file(tmp: Path) -> str:
    doc = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Note": [{"name": "text", "type": "string"}],
        },
        "primaryType": "Note",
        "domain": {"name": "sahara", "chainId": 1},
        "message": {"text": "hi"},
    }
    path = tmp / "typed.json"
    path.write_text(json.dumps(doc))
    return str(path)


def key_file(tmp: Path) -> str:
    path = tmp / "key.txt"
    path.write_text(TEST_KEY_0)
    return str(path)


#: Ids that protocol_setup made, read by the protocol samples.
MADE: dict[str, str] = {}
_walk_assets = itertools.count(1)


def protocol_setup(cli: Invoke, url: str, tmp: Path) -> None:
    """An asset owned by a new ID 'dev0' (dev account 0, also its meter) with full, api and
    partnership offers; an api and a partnership license held by the funded default ID
    'main', which also has revenue to claim."""
    from sahara_cli.identity.keys import keccak256
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Contribution, Protocol

    client = NodeClient(url)
    main = cli("--json", "id", "show", "--no-chain").json()["address"]
    client.call("sahara_dev_setBalance", main, hex(10**20))
    imported = cli(
        "--json", "--no-prompt", "id", "import", "dev0", "--private-key-file", key_file(tmp)
    )
    assert imported.exit_code == 0, imported.stderr
    proto = Protocol(client)
    dev0 = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    contributors = [Contribution(dev0.address, 9000), Contribution(main, 1000)]
    asset, _ = proto.register(
        dev0,
        kind="dataset",
        cid=f"bafy-walk-{next(_walk_assets)}",
        commitment=b"\1" * 32,
        name="walk",
        contributors=contributors,
    )
    full, _ = proto.offer(dev0, asset, "full", price=10**16)
    api, _ = proto.offer(dev0, asset, "api", price=10**15)
    partnership, _ = proto.offer(
        dev0, asset, "partnership", terms=keccak256(b"terms"), share_bps=2_000
    )
    MADE.update(asset=str(asset), full=str(full), api=str(api), partnership=str(partnership))
    for args in (["buy", str(api), "--calls", "5", "--yes"], ["accept", str(partnership), "--yes"]):
        result = cli("--json", "--no-prompt", "license", *args)
        assert result.exit_code == 0, result.stderr
        MADE[args[0]] = str(result.json()["license_id"])
    proto.pay(dev0, asset, 10**15)  # revenue, a tenth of it credited to main


def provenance_setup(url: str, tmp: Path) -> None:
    """An answer of the walk's asset recorded through the inference SAP, its record kept
    in a file (as a caller keeps a served answer's), and a job submitted on it."""
    from sahara_cli.agent.record import build_record, commit_record
    from sahara_cli.node.client import NodeClient
    from sahara_cli.protocol.client import Protocol

    proto = Protocol(NodeClient(url))
    dev0 = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    asset = int(MADE["asset"])
    record = build_record(
        agent="walker",
        agent_asset=asset,
        model_cid=None,
        runner="llama",
        messages=[{"role": "user", "content": "hi"}],
        answer="hello",
    )
    done = commit_record(proto, dev0, record)
    path = tmp / "record.json"
    path.write_text(json.dumps(record.to_dict()))
    bond, _ = proto.training.parameters()
    job, _ = proto.training.submit(
        dev0,
        kind="train",
        base=0,
        inputs=[asset],
        weights_bps=[],
        hparams=b"\x11" * 32,
        cid=f"bafy-walk-job-{next(_walk_assets)}",
        commitment=b"\x22" * 32,
        name="walk-tuned",
        metrics='{"loss": 1.5}',
        upstream_bps=3_000,
        bond_wei=bond,
    )
    MADE.update(answer=f"answer:{done['record_id']}", record_file=str(path), job=f"job:{job}")


def sample_file(tmp: Path) -> str:
    path = tmp / "data.csv"
    path.write_text(f"a,b\n1,{next(_walk_assets)}\n")
    return str(path)


# A successful invocation of each command, run with --json in a fresh initialised home.
SAMPLES = {
    ("asset", "list"): lambda tmp: ["asset", "list"],
    ("asset", "register"): lambda tmp: ["asset", "register", sample_file(tmp), "--kind", "dataset"],
    ("asset", "show"): lambda tmp: ["asset", "show", MADE["asset"]],
    ("asset", "update"): lambda tmp: [
        "asset",
        "update",
        MADE["asset"],
        "--uri",
        "ipfs://meta",
        "--id",
        "dev0",
    ],
    ("attribute", "add"): lambda tmp: [
        "attribute",
        "add",
        MADE["asset"],
        "--contributor",
        "main",
        "--weight",
        "5%",
        "--id",
        "dev0",
    ],
    ("attribute", "show"): lambda tmp: ["attribute", "show", MADE["asset"]],
    ("compute", "jobs"): lambda tmp: ["compute", "jobs"],
    ("claim",): lambda tmp: ["claim"],
    ("license", "accept"): lambda tmp: ["license", "accept", MADE["partnership"], "--yes"],
    ("license", "buy"): lambda tmp: ["license", "buy", MADE["full"], "--yes"],
    ("license", "check"): lambda tmp: ["license", "check", MADE["asset"]],
    ("license", "list"): lambda tmp: ["license", "list", "--mine"],
    ("license", "meter"): lambda tmp: [
        "license",
        "meter",
        MADE["buy"],
        "--calls",
        "2",
        "--id",
        "dev0",
    ],
    ("license", "offer"): lambda tmp: [
        "license",
        "offer",
        MADE["asset"],
        "--type",
        "long-term",
        "--price",
        "1",
        "--duration",
        "30d",
        "--expires",
        "7d",
        "--id",
        "dev0",
    ],
    ("license", "pause"): lambda tmp: ["license", "pause", MADE["full"], "--id", "dev0"],
    ("license", "refund"): lambda tmp: ["license", "refund", MADE["buy"]],
    ("license", "reprice"): lambda tmp: [
        "license",
        "reprice",
        MADE["full"],
        "--price",
        "0.5",
        "--id",
        "dev0",
    ],
    ("license", "resume"): lambda tmp: ["license", "resume", MADE["full"], "--id", "dev0"],
    ("license", "settle"): lambda tmp: ["license", "settle", MADE["accept"], "--revenue", "10"],
    ("license", "show"): lambda tmp: ["license", "show", MADE["buy"]],
    ("market", "list"): lambda tmp: ["market", "list"],
    ("market", "search"): lambda tmp: ["market", "search", "walk"],
    ("market", "show"): lambda tmp: ["market", "show", MADE["full"]],
    ("events",): lambda tmp: ["events", "--asset", MADE["asset"], "--limit", "20"],
    ("provenance", "list"): lambda tmp: ["provenance", "list", "--asset", MADE["asset"]],
    ("provenance", "show"): lambda tmp: ["provenance", "show", MADE["job"]],
    ("provenance", "verify"): lambda tmp: [
        "provenance",
        "verify",
        MADE["answer"],
        "--record",
        MADE["record_file"],
    ],
    ("config", "get"): lambda tmp: ["config", "get", "node.rpc_url"],
    ("config", "path"): lambda tmp: ["config", "path"],
    ("config", "set"): lambda tmp: ["config", "set", "log.level", "debug"],
    ("config", "show"): lambda tmp: ["config", "show"],
    ("config", "unset"): lambda tmp: ["config", "unset", "log.level"],
    ("doctor",): lambda tmp: ["doctor"],
    ("setup", "cometbft"): lambda tmp: ["setup", "cometbft"],
    ("setup", "kubo"): lambda tmp: ["setup", "kubo"],
    ("schema",): lambda tmp: ["schema", "doctor"],
    ("id", "create"): lambda tmp: ["id", "create", "bob"],
    ("id", "delete"): lambda tmp: ["id", "delete", "main", "--yes"],
    ("id", "export"): lambda tmp: ["id", "export", "main"],
    ("id", "import"): lambda tmp: ["id", "import", "k", "--private-key-file", key_file(tmp)],
    ("id", "list"): lambda tmp: ["id", "list"],
    ("id", "rename"): lambda tmp: ["id", "rename", "main", "primary"],
    ("id", "show"): lambda tmp: ["id", "show"],
    ("id", "sign-message"): lambda tmp: ["id", "sign-message", "hello"],
    ("id", "sign-typed-data"): lambda tmp: ["id", "sign-typed-data", typed_data_file(tmp)],
    ("id", "use"): lambda tmp: ["id", "use", "main"],
    ("id", "verify-message"): lambda tmp: [
        "id",
        "verify-message",
        "hello",
        "--signature",
        "0x" + Signer(bytes.fromhex(TEST_KEY_0[2:])).sign_message(b"hello").hex(),
    ],
    ("init",): lambda tmp: ["init"],
    ("balance",): lambda tmp: ["balance"],
    ("localnet", "down"): lambda tmp: ["localnet", "down"],
    ("node", "accounts"): lambda tmp: ["node", "accounts"],
    ("node", "fund"): lambda tmp: ["node", "fund", "main", "1.5"],
    ("node", "logs"): lambda tmp: ["node", "logs"],
    ("node", "reset"): lambda tmp: ["node", "reset", "--yes"],
    ("node", "status"): lambda tmp: ["node", "status"],
    ("node", "stop"): lambda tmp: ["node", "stop"],
    ("tx", "send"): lambda tmp: [
        "tx",
        "send",
        "--to",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "--value",
        "1",
    ],
    ("tx", "show"): lambda tmp: ["tx", "show", "0x" + "ab" * 32],
    ("vault", "add"): lambda tmp: ["vault", "add", vault_file(tmp), "--no-index"],
    ("vault", "cat"): lambda tmp: ["vault", "cat", MADE["vault"]],
    ("vault", "daemon", "status"): lambda tmp: ["vault", "daemon", "status"],
    ("vault", "daemon", "stop"): lambda tmp: ["vault", "daemon", "stop"],
    ("vault", "export"): lambda tmp: [
        "vault",
        "export",
        MADE["vault"],
        "--car",
        str(tmp / "v.car"),
    ],
    ("vault", "gc"): lambda tmp: ["vault", "gc", "--dry-run"],
    ("vault", "get"): lambda tmp: ["vault", "get", MADE["vault"], "-o", str(tmp / "out.txt")],
    ("vault", "import"): lambda tmp: ["vault", "import", MADE["car"]],
    ("vault", "ls"): lambda tmp: ["vault", "ls"],
    ("vault", "rm"): lambda tmp: ["vault", "rm", MADE["vault"], "--yes"],
    ("vault", "search"): lambda tmp: ["vault", "search", "walk"],
    ("vault", "share"): lambda tmp: [
        "vault",
        "share",
        MADE["vault"],
        "--to",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ],
    ("vault", "status"): lambda tmp: ["vault", "status"],
    ("vault", "serve-status"): lambda tmp: ["vault", "serve-status"],
    ("vault", "serve-stop"): lambda tmp: ["vault", "serve-stop"],
    # model commands
    ("model", "add"): lambda tmp: [
        "model",
        "add",
        tiny_gguf_at(tmp),
    ],
    ("model", "default"): lambda tmp: ["model", "default"],
    ("model", "demo"): lambda tmp: ["model", "demo"],
    ("model", "list"): lambda tmp: ["model", "list"],
    ("model", "rm"): lambda tmp: [
        "model",
        "rm",
        stored_model(tmp),
        "--yes",
    ],
    ("model", "show"): lambda tmp: [
        "model",
        "show",
        tiny_gguf_at(tmp),
    ],
    # mcp commands
    ("mcp", "tools"): lambda tmp: ["mcp", "tools"],
    ("mcp", "key"): lambda tmp: ["mcp", "key", "--ttl", "1h"],
    # agent commands
    ("agent", "create"): lambda tmp: ["agent", "create", "w1", "--template", "researcher"],
    ("agent", "templates"): lambda tmp: ["agent", "templates"],
    ("agent", "list"): lambda tmp: ["agent", "list"],
    ("agent", "show"): lambda tmp: ["agent", "show", made_agent(tmp)],
    ("agent", "rm"): lambda tmp: ["agent", "rm", made_agent(tmp), "--yes"],
    ("agent", "chat"): lambda tmp: ["agent", "chat", made_agent(tmp), "--message", "Hello?"],
    ("agent", "run"): lambda tmp: ["agent", "run", made_agent(tmp), "--task", task_file(tmp)],
    ("agent", "feedback", "list"): lambda tmp: ["agent", "feedback", "list", made_agent(tmp)],
    ("agent", "feedback", "export"): lambda tmp: [
        "agent",
        "feedback",
        "export",
        made_agent(tmp),
        "-o",
        str(tmp / "feedback.jsonl"),
    ],
    ("agent", "learn"): lambda tmp: [
        "agent",
        "learn",
        learning_agent(tmp),
        "--max-steps",
        "2",
        "--no-record",
    ],
    ("agent", "publish"): agent_serve_samples.publish_args,
    ("agent", "key"): agent_serve_samples.key_args,
    ("agent", "team", "run"): lambda tmp: [
        "agent",
        "team",
        "run",
        team_file(tmp),
        "--task",
        "Say hello.",
    ],
}


def vault_file(tmp: Path) -> str:
    path = tmp / "walk.txt"
    path.write_text("a short text for the walk\n")
    return str(path)


def vault_setup(cli: Invoke, tmp: Path) -> None:
    """One private item in the home's vault, and a CAR export of it."""
    added = cli("--json", "vault", "add", vault_file(tmp)).json()["items"][0]
    car = tmp / "walk.car"
    cli("--json", "vault", "export", added["cid"], "--car", str(car))
    MADE.update(vault=added["cid"], car=str(car))


def made_agent(tmp: Path, name: str = "walker") -> str:
    """An agent on a tiny random GGUF in the walk's home (no vault search, no memory)."""
    from sahara_cli.agent.spec import AgentSpec, AgentStore

    spec = AgentSpec.model_validate(
        {
            "name": name,
            "model": {"name": tiny_gguf_at(tmp), "n_ctx": 512},
            "generation": {"max_tokens": 8, "temperature": 0.0},
            "memory": {"long_term": False},
            "vault": {"search": False},
        }
    )
    AgentStore(tmp / "home").save(spec, overwrite=True)
    return name


def task_file(tmp: Path) -> str:
    path = tmp / "task.txt"
    path.write_text("Add 2 and 3.\n")
    return str(path)


def team_file(tmp: Path) -> str:
    """A hierarchical team of two agents on a tiny random GGUF, in the walk's home."""
    from sahara_cli.agent.runners.tiny_models import write_tiny_gguf
    from sahara_cli.agent.spec import AgentSpec, AgentStore

    model = write_tiny_gguf(tmp / "tiny.gguf")
    for name in ("lead", "helper"):
        spec = {
            "name": name,
            "model": {"name": str(model), "n_ctx": 512},
            "generation": {"max_tokens": 4, "temperature": 0.0},
            "memory": {"long_term": False},
            "vault": {"search": False},
            "loop": {"max_steps": 0},
        }
        AgentStore(tmp / "home").save(AgentSpec.model_validate(spec))
    path = tmp / "team.toml"
    path.write_text('name = "walk"\nmanager = "lead"\nworkers = ["helper"]\nmax_subtasks = 1\n')
    return str(path)


# Commands that run a process until stopped cannot print their document in-process: they
# are checked for the error half of the contract here and for the rest in tests/e2e.
NO_COMET = ["--comet-rpc", "http://127.0.0.1:9", "--rpc", "http://127.0.0.1:9"]
FAILING_SAMPLES = {
    # A localnet's commands need one running (tests/e2e/test_localnet.py); without one
    # they fail cleanly.
    ("localnet", "up"): lambda tmp: ["localnet", "up", "--validators", "0"],
    ("localnet", "status"): lambda tmp: ["localnet", "status"],
    ("localnet", "stop-node"): lambda tmp: ["localnet", "stop-node", "0"],
    ("localnet", "start-node"): lambda tmp: ["localnet", "start-node", "0"],
    ("localnet", "logs"): lambda tmp: ["localnet", "logs", "0"],
    # The light client needs a CometBFT chain (tests/e2e/test_light.py); port 9 has none.
    ("light", "balance"): lambda tmp: ["light", "balance", "0x" + "11" * 20, *NO_COMET],
    ("light", "storage"): lambda tmp: ["light", "storage", "0x" + "11" * 20, "0", *NO_COMET],
    ("light", "head"): lambda tmp: ["light", "head", *NO_COMET],
    ("light", "follow"): lambda tmp: ["light", "follow", "--count", "1", *NO_COMET],
    ("node", "run"): lambda tmp: ["node", "run", "--rpc-addr", "no-port"],
    ("node", "start"): lambda tmp: ["node", "start", "--dev", "--rpc-addr", "no-port"],
    ("vault", "serve"): lambda tmp: ["vault", "serve", "--addr", "no-port"],
    ("vault", "daemon", "start"): lambda tmp: [
        "vault",
        "daemon",
        "start",
        "--ipfs-bin",
        str(tmp / "no-such-ipfs"),
    ],
    # compute: training needs a model and licensed data (tests/compute); here, bad input.
    ("compute", "train"): lambda tmp: [
        "compute",
        "train",
        "--base",
        str(tmp / "none"),
        "--data",
        "1",
    ],
    ("compute", "show"): lambda tmp: ["compute", "show", "nothing"],
    ("compute", "merge"): lambda tmp: ["compute", "merge", "asset:1"],
    ("compute", "finalize"): lambda tmp: ["compute", "finalize", "nothing"],
    ("compute", "cancel"): lambda tmp: ["compute", "cancel", "nothing"],
    # the dispute game end to end is in tests/compute/test_game.py; here, bad input.
    ("compute", "infer"): lambda tmp: ["compute", "infer", "1", "--input", "x"],
    ("compute", "verify"): lambda tmp: ["compute", "verify", "nothing"],
    ("compute", "challenge"): lambda tmp: ["compute", "challenge", "nothing"],
    ("compute", "defend"): lambda tmp: ["compute", "defend", "--once"],
    ("compute", "dispute", "show"): lambda tmp: ["compute", "dispute", "show", "1"],
    # agent/mcp servers
    ("model", "pull"): lambda tmp: ["model", "pull", "owner/nothing-GGUF", "nothing.gguf"],
    ("model", "register"): lambda tmp: ["model", "register", "no-such-model"],
    ("agent", "serve"): lambda tmp: ["agent", "serve", "nobody", "--addr", "no-port"],
    ("mcp", "serve"): lambda tmp: ["mcp", "serve", "--transport", "http", "--addr", "no-port"],
}


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "sahara")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    assert (getattr(command, "help", None) or "").strip(), (
        f"'sahara {' '.join(path)}' has no help text"
    )
    for param in getattr(command, "params", []):
        if getattr(param, "hidden", False) or param.param_type_name == "argument":
            continue
        assert (getattr(param, "help", None) or "").strip(), (
            f"{param.opts} of 'sahara {' '.join(path)}' has no help"
        )


def test_every_command_has_a_json_sample() -> None:
    samples = set(SAMPLES) | set(FAILING_SAMPLES)
    missing = sorted(set(LEAVES) - samples)
    assert not missing, f"add a --json sample for: {missing}"
    assert not samples - set(LEAVES), "SAMPLES names commands that no longer exist"


def test_every_command_declares_its_result() -> None:
    untyped = sorted(" ".join(p) for p, c in LEAF_COMMANDS.items() if result_model(c) is None)
    assert not untyped, f"declare @returns(...) for: {untyped}"


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real dev node (in this process) for the commands that talk to one."""
    from sahara_cli.node.rpc.testing import dev_node

    with dev_node(tmp_path_factory.mktemp("node")) as (_, server):
        yield server.url


@pytest.mark.parametrize("path", sorted(SAMPLES), ids=" ".join)
def test_every_command_prints_one_json_document(
    path: tuple[str, ...],
    cli: Invoke,
    initialised: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    live_node: str,
) -> None:
    monkeypatch.setenv("SAHARA_PASSWORD", PASSWORD)
    monkeypatch.setenv("SAHARA_NODE_RPC_URL", live_node)
    if path in {("balance",), ("tx", "send")}:  # fund the home's ID on the shared dev node
        from sahara_cli.node.client import NodeClient

        address = cli("--json", "id", "show").json()["address"]
        NodeClient(live_node).call("sahara_dev_setBalance", address, hex(10**20))
    if path == ("tx", "show"):  # a transaction that exists
        from sahara_cli.node.client import NodeClient

        client = NodeClient(live_node)
        sender = client.call("eth_accounts")[0]
        tx_hash = client.call("eth_sendTransaction", {"from": sender, "to": sender, "value": "0x1"})
        client.wait_for_receipt(tx_hash)
        monkeypatch.setitem(SAMPLES, path, lambda tmp: ["tx", "show", tx_hash])
    if path[0] == "setup":  # a cache with both programs built: the command says so
        from sahara_cli.gobin import BINARIES, cache_dir

        monkeypatch.setenv("SAHARA_CACHE", str(tmp_path / "cache"))
        for binary in BINARIES.values():
            built = cache_dir(binary) / binary.executable
            built.parent.mkdir(parents=True)
            built.write_text("#!/bin/sh\n")
            built.chmod(0o755)
            (built.parent / ".complete").touch()
    if path[0] in {"asset", "attribute", "claim", "events", "license", "market", "provenance"}:
        protocol_setup(cli, live_node, tmp_path)
    if path[0] == "provenance":
        provenance_setup(live_node, tmp_path)
    if path[0] == "vault" and path[1] not in {
        "add",
        "ls",
        "status",
        "daemon",
        "serve-status",
        "serve-stop",
    }:
        vault_setup(cli, tmp_path)
    args = SAMPLES[path](tmp_path)
    result = cli("--json", "--no-prompt", *args)
    # stdout holds exactly one JSON document and nothing else.
    assert result.stdout, result.stderr
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    assert "\x1b[" not in result.stdout
    # the document is what the published schema says
    jsonschema.validate(document, json_schema(path, result_model(LEAF_COMMANDS[path])))
    if result.exit_code != 0:
        # Commands that report a failed outcome (doctor, verify) still print their document.
        assert path in {("doctor",)}, result.stderr


@pytest.mark.parametrize("path", sorted(FAILING_SAMPLES), ids=" ".join)
def test_failing_commands_print_one_json_error(
    path: tuple[str, ...], cli: Invoke, initialised: Path
) -> None:
    result = cli("--json", "--no-prompt", *FAILING_SAMPLES[path](initialised))
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.error()["message"]


@pytest.mark.parametrize("path", sorted(set(SAMPLES) | set(FAILING_SAMPLES)), ids=" ".join)
def test_every_command_help_works(path: tuple[str, ...], cli: Invoke) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout
