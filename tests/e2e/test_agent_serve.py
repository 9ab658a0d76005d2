"""A published agent served over the OpenAI API: the official ``openai`` client gets
answers (streamed too) with an API key signed by the caller's Sahara ID, a caller
without a license is refused, and every metered call pays the agent's owner, its
model's contributors and the contributors of the vault asset it retrieved, to the wei.

The agent runs on a tiny random GGUF in real llama.cpp, against a dev node, as the
``sahara agent serve`` process a user would start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY_0
from tests.e2e.nodes import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "serve test password"
SAH = 10**18
PRICE = SAH // 1000  # 0.001 SAH a call
MAX_DEPTH = 3
BPS = 10_000
DOC = (
    "Zebras graze on grasses in the savanna. A zebra herd moves with the seasons to find "
    "fresh grass and water, and zebras rarely eat anything but grass."
)


class Home:
    def __init__(self, root: Path, workdir: Path) -> None:
        self.root = root
        self.workdir = workdir
        self.env: dict[str, str] = {}

    def environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
        return base | {
            "SAHARA_HOME": str(self.root),
            "SAHARA_PASSWORD": PASSWORD,
            "SAHARA_IDENTITY_SCRYPT_N": "1024",
            **self.env,
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
            capture_output=True,
            text=True,
            env=self.environ(),
            cwd=self.workdir,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.returncode == 0, f"sahara {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout)

    def fails(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.run(*args)
        assert result.returncode != 0, result.stdout
        assert result.stdout == ""
        return result.returncode, json.loads(result.stderr.strip().splitlines()[-1])["error"]

    def protocol(self) -> Any:
        from sahara_cli.node.client import NodeClient
        from sahara_cli.protocol.client import Protocol

        return Protocol(NodeClient(self.env["SAHARA_NODE_RPC_URL"]))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    tmp = tmp_path_factory.mktemp("serve")
    work = tmp / "work"
    work.mkdir()
    h = Home(tmp / "home", work)
    h.ok("init")
    for name in ("buyer", "stranger", "carol", "dana"):
        h.ok("id", "create", name)
    port = free_port()
    h.env["SAHARA_NODE_RPC_URL"] = f"http://127.0.0.1:{port}"
    h.ok("node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{port}")
    try:
        for name in ("buyer", "stranger", "carol"):
            address = h.ok("id", "show", name, "--no-chain")["address"]
            h.ok("tx", "send", "--to", address, "--value", "5")
        yield h
    finally:
        h.run("node", "stop")


def address(home: Home, name: str | None = None) -> str:
    args = ["id", "show", "--no-chain"] + ([name] if name else [])
    return str(home.ok(*args)["address"])


@pytest.fixture(scope="module")
def published(home: Home) -> dict[str, Any]:
    """The tiny model, registered by dev account 0 with dana as a 30% contributor; a
    public document registered by carol with dana as a 40% contributor; the agent
    'helper' over both, published by the home's default ID at 0.001 SAH a call with a
    30% upstream share."""
    from sahara_cli.agent.models import ModelStore
    from sahara_cli.agent.spec import AgentSpec, AgentStore
    from sahara_cli.agent.tinymodel import write_tiny_gguf
    from sahara_cli.identity import Signer
    from sahara_cli.protocol.client import Contribution

    gguf = write_tiny_gguf(home.workdir / "tiny.gguf", seed=0)
    entry = ModelStore(home.root).add(gguf, name="tiny")
    proto = home.protocol()
    dev0 = Signer(bytes.fromhex(TEST_KEY_0[2:]))
    dana = address(home, "dana")
    model_asset, _ = proto.register(
        dev0,
        kind="model",
        cid=entry.cid,
        commitment=bytes.fromhex(entry.sha256),
        name="tiny",
        contributors=[Contribution(dev0.address, 7000), Contribution(dana, 3000)],
    )
    (home.workdir / "zebras.txt").write_text(DOC)
    doc = home.ok(
        "asset",
        "register",
        "zebras.txt",
        "--kind",
        "dataset",
        "--name",
        "zebras",
        "--public",
        "--contributor",
        "dana:4000",
        "--id",
        "carol",
    )
    spec = AgentSpec.model_validate(
        {
            "name": "helper",
            "persona": "You are a terse assistant who answers from the passages.",
            "model": {"name": "tiny", "n_ctx": 1024},
            "generation": {"max_tokens": 8, "temperature": 0.0, "seed": 7},
            "tools": {"builtin": []},
            "memory": {"long_term": False, "short_term_turns": 0, "feedback_examples": 0},
            "vault": {"search": True, "top_k": 2},
            "license": {"policy": "any"},
            "loop": {"max_steps": 0},
        }
    )
    AgentStore(home.root).save(spec)
    result = home.ok(
        "agent", "publish", "helper", "--price-per-call", "0.001", "--upstream-share", "30%"
    )
    return {"model": model_asset, "doc": doc["id"], **result}


def test_publish_registers_the_agent_on_its_model(home: Home, published: dict[str, Any]) -> None:
    proto = home.protocol()
    agent = proto.asset(published["asset_id"])
    assert agent.kind == "agent" and agent.name == "helper"
    assert agent.parents == [published["model"]] == [published["model_asset"]]
    assert agent.owner == address(home) == agent.meter
    assert proto.upstream_bps(agent.id) == 3000
    offer = proto.get_offer(published["offer_id"])
    assert (offer.type, offer.price, offer.asset) == ("api", PRICE, agent.id)
    assert home.ok("agent", "show", "helper")["spec"]["asset_id"] == agent.id
    # Publishing again keeps the asset and offers anew.
    again = home.ok("agent", "publish", "helper", "--price-per-call", "0.002")
    assert again["asset_id"] == agent.id and again["offer_id"] == published["offer_id"] + 1
    assert "register_tx" not in again


@pytest.fixture(scope="module")
def served(home: Home, published: dict[str, Any]) -> Iterator[str]:
    """``sahara agent serve helper`` in its own process; yields its /v1 URL."""
    port = free_port()
    log = (home.workdir / "serve.log").open("w")
    argv = [sys.executable, "-m", "sahara_cli", "--no-prompt", "agent", "serve", "helper"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        env=home.environ(),
        cwd=home.workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None, (home.workdir / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "agent serve did not come up"
            time.sleep(0.1)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            log.close()


def api_key(home: Home, published: dict[str, Any], who: str | None) -> str:
    args = ["agent", "key", str(published["asset_id"]), "--ttl", "1h"]
    if who:
        args += ["--id", who]
    return str(home.ok(*args)["api_key"])


def expected_credits(proto: Any, asset: int, amount: int, sources: list[int]) -> Counter[str]:
    """The Attribution contract's split, computed from the chain's graph in Python."""
    credits: Counter[str] = Counter()
    queue = [(asset, amount, 0)]
    while queue:
        current, value, depth = queue.pop(0)
        info = proto.asset(current)
        targets = list(info.parents)
        if depth == 0:
            targets += [s for s in dict.fromkeys(sources) if s != current and s not in targets]
        local = value
        upstream = proto.upstream_bps(current)
        if upstream and depth < MAX_DEPTH and targets:
            each = value * upstream // BPS // len(targets)
            if each:
                queue.extend((t, each, depth + 1) for t in targets)
                local -= each * len(targets)
        given = 0
        for c in proto.contributors(current):
            part = local * c.weight_bps // BPS
            credits[c.account] += part
            given += part
        credits[info.owner] += local - given
    return credits


def test_openai_client_calls_are_metered_recorded_and_paid_to_the_wei(
    home: Home, published: dict[str, Any], served: str
) -> None:
    import openai

    from sahara_cli.agent.record import Record, RecordStore

    proto = home.protocol()
    agent = published["asset_id"]
    buyer = address(home, "buyer")
    bought = home.ok(
        "license", "buy", str(published["offer_id"]), "--calls", "5", "--id", "buyer", "--yes"
    )
    license_id = bought["license_id"]
    people = [address(home), address(home, "carol"), address(home, "dana"), buyer]
    people.append(proto.asset(published["model"]).owner)
    before = {p: proto.claimable(p) for p in people}
    escrow_before = proto.node.balance(proto.licensing.address)
    client = openai.OpenAI(
        base_url=served, api_key=api_key(home, published, "buyer"), max_retries=0
    )

    started = time.perf_counter()
    reply = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "What do zebras eat?"}]
    )
    latency = time.perf_counter() - started
    assert reply.object == "chat.completion" and reply.model == "helper"
    text = reply.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    first = (reply.model_extra or {})["sahara"]
    assert first["license_id"] == license_id
    assert published["doc"] in first["paid_sources"]  # the answer retrieved carol's document

    chunks = list(
        client.chat.completions.create(
            model="helper",
            messages=[{"role": "user", "content": "Where do zebras find water?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces).strip()
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1
    second = (finishing[0].model_extra or {})["sahara"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert second["record"]["answer_hash"] != first["record"]["answer_hash"] or (
        second["record"]["prompt_hash"] != first["record"]["prompt_hash"]
    )

    # Each call metered one call of the license, and paid exactly the contract's split.
    lic = proto.get_license(license_id)
    assert (lic.calls, lic.used) == (3, 2)
    expected: Counter[str] = Counter()
    for call in (first, second):
        expected.update(expected_credits(proto, agent, PRICE, call["paid_sources"]))
    for person in people:
        assert proto.claimable(person) - before[person] == expected[person], person
    assert sum(expected.values()) == 2 * PRICE
    assert expected[address(home, "dana")] > 0 and expected[address(home, "carol")] > 0
    assert escrow_before - proto.node.balance(proto.licensing.address) == 2 * PRICE

    # Both answers are on chain: digest, agent asset, license, recorder.
    for call in (first, second):
        record = proto.get_record(call["record_id"])
        assert record.digest == call["record"]["digest"] == Record.from_dict(call["record"]).digest
        assert (record.asset, record.license, record.recorder) == (agent, license_id, address(home))
        assert call["meter_tx"]["gas_used"] > 0
    with RecordStore(home.root / "agents" / "helper" / "records.sqlite") as store:
        kept = store.get(first["record"]["digest"])
        assert kept["committed"] and kept["record_id"] == first["record_id"]

    print(
        f"\nserved call: {latency:.3f} s; gas: meterWith {first['meter_tx']['gas_used']}, "
        f"record {first['record']['gas_used']}"
    )


def test_callers_without_a_license_or_a_valid_key_are_refused(
    home: Home, published: dict[str, Any], served: str
) -> None:
    import openai

    messages = [{"role": "user", "content": "Hello?"}]
    stranger = openai.OpenAI(
        base_url=served, api_key=api_key(home, published, "stranger"), max_retries=0
    )
    count = home.protocol().record_count()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        stranger.chat.completions.create(model="helper", messages=messages)
    assert refused.value.status_code == 403
    assert refused.value.code == "agent.no_license"
    with pytest.raises(openai.PermissionDeniedError):
        stranger.chat.completions.create(model="helper", messages=messages, stream=True)
    for bad in ("sk-not-a-sahara-key", api_key(home, published, "buyer")[:-6] + "AAAAAA"):
        client = openai.OpenAI(base_url=served, api_key=bad, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as denied:
            client.chat.completions.create(model="helper", messages=messages)
        assert denied.value.code == "agent.auth_failed"
    assert home.protocol().record_count() == count  # nothing answered, nothing recorded
    models = stranger.models.list()
    assert [m.id for m in models.data] == ["helper"]


def test_the_owner_is_served_without_metering(
    home: Home, published: dict[str, Any], served: str
) -> None:
    import openai

    owner = openai.OpenAI(base_url=served, api_key=api_key(home, published, None), max_retries=0)
    reply = owner.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Test."}]
    )
    extra = (reply.model_extra or {})["sahara"]
    assert extra["license_id"] is None and extra["meter_tx"] is None
    assert home.protocol().get_record(extra["record_id"]).license == 0


def test_serve_and_key_fail_cleanly(home: Home, published: dict[str, Any]) -> None:
    code, error = home.fails("agent", "serve", "nobody")
    assert code == 3 and error["code"] == "agent.not_found"
    code, error = home.fails("agent", "serve", "helper", "--addr", "no-port")
    assert code == 2
    code, error = home.fails("agent", "key", str(published["model"]))
    assert code == 2 and "not an agent" in error["message"]
    code, error = home.fails("agent", "publish", "helper", "--price-per-call", "cheap")
    assert code == 2
