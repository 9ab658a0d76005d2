"""Serving agents over A2A in the tests: uvicorn in a thread on a free port, and an
agent whose every answer quotes a private passage and a tool's output (so a test can
see whether either leaves the server)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from sahara_cli.agent.servers.a2a import build_app
from sahara_cli.agent.servers.a2a_auth import Credentials
from sahara_cli.agent.spec import AgentSpec
from sahara_cli.agent.types import Answer, Message, Source, ToolCall
from sahara_cli.identity import Signer

#: A private vault passage, a tool's output and a tool argument no stranger may read.
PRIVATE_TEXT = "The secret quokka recipe uses saltbush leaves and fresh seep water."
TOOL_OUTPUT = "balance of the private account: 424242"
TOOL_ARGUMENT = "saltbush * 3"
OWNER_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
STRANGER_KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")


def owner() -> Signer:
    return Signer(OWNER_KEY)


def stranger() -> Signer:
    return Signer(STRANGER_KEY)


class PrivateAgent:
    """Stands in for a model-backed agent (the server, guard and SDK are real): every
    answer retrieved :data:`PRIVATE_TEXT` and called a tool that returned
    :data:`TOOL_OUTPUT`."""

    def __init__(self, name: str = "keeper") -> None:
        self.spec = AgentSpec.model_validate(
            {"name": name, "description": "Keeps the recipes.", "persona": "You keep recipes."}
        )
        self.runner: Any = None
        self.asked: list[str] = []

    def respond(self, messages: Sequence[Message]) -> Answer:
        self.asked.append(messages[-1].content)
        return Answer(
            text="I found the recipe.",
            sources=[
                Source(
                    cid="bafkreiquokka",
                    name="recipe.md",
                    score=0.9,
                    text=PRIVATE_TEXT,
                    private=True,
                )
            ],
            tool_calls=[ToolCall("calculator", {"expression": TOOL_ARGUMENT}, output=TOOL_OUTPUT)],
            record={"agent": self.spec.name},
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """``agent`` served over A2A by uvicorn in a thread, on a free loopback port."""

    def __init__(
        self,
        agent: Any,
        *,
        secret: str | None = None,
        signer: Signer | None = None,
        owner: str | None = None,
        peers: Sequence[str] = (),
        **options: Any,
    ) -> None:
        import uvicorn

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        app = build_app(
            agent,
            self.url,
            credentials=Credentials(secret, signer),
            owner=owner,
            peers=peers,
            **options,
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the A2A server did not start"
            assert time.monotonic() < deadline, "the A2A server did not start in time"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


#: The headers of a JSON-RPC request of A2A 1.0.
RPC_HEADERS = {"Content-Type": "application/json", "A2A-Version": "1.0"}


def send_message_body(text: str = "What is in the recipe?", request_id: str = "1") -> bytes:
    """A JSON-RPC ``SendMessage`` request as an A2A 1.0 client sends it."""
    import json

    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "SendMessage",
            "params": {
                "message": {
                    "messageId": f"m-{request_id}",
                    "role": "ROLE_USER",
                    "parts": [{"text": text}],
                }
            },
        }
    ).encode("utf-8")
