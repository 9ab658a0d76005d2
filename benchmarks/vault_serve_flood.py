"""``vault serve`` under a flood of bogus key requests: does a licensee still get its key?

    python benchmarks/vault_serve_flood.py [--requests N] [--concurrency C] [--legit N]
                                           [--peer-src DIR] [--json-out FILE]

One dev node (``sahara node start --dev``) and one owner home with a registered,
licensed asset; then, for each side, a ``sahara vault serve`` process of that side's
code on the same home:

  quiet      --legit (default 10) key requests by the licensee, one after another, with
             nothing else going on: latency p50 and max
  flood      --requests (default 5,000) bogus key requests posted from 127.0.0.2,
             --concurrency (default 64) at a time: a quarter each validly signed by an
             address without a license, forged (the licensee's address, another
             signature), one request replayed, and signed for another server. Meanwhile
             the licensee, from 127.0.0.1, asks for its key --legit times, one every
             100 ms: latency p50 and max, and how many got the key
  rate       bogus requests answered per second over the flood; how many got a key
             (must be 0) and the answers by HTTP status

The peer (``--peer-src DIR``, a checkout of another version, e.g. the last release) runs
the same scenario first; its requests are signed in the form that version reads (no
audience line). Without it only this tree is measured. Prints a table, then one JSON
document (``--json-out FILE`` also writes it). Exit status 0 unless the set-up fails.
Needs ``source scripts/_setup.sh``. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import finish, machine, say  # noqa: E402

PASSWORD = "bench password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(home: Path, src: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    return env | {
        "SAHARA_HOME": str(home),
        "SAHARA_IDENTITY_SCRYPT_N": "1024",
        "SAHARA_PASSWORD": PASSWORD,
        "PYTHONPATH": str(src),
        **extra,
    }


def sahara(home: Path, extra: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
        env=env_for(home, ROOT, extra),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"sahara {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


class World:
    """A dev node, an owner home with a licensed asset, and the licensee's key."""

    def __init__(self, tmp: Path) -> None:
        from sahara_cli.identity import Signer
        from sahara_cli.node.client import NodeClient
        from sahara_cli.protocol.client import Protocol

        self.home = tmp / "owner"
        rpc_port = free_port()
        self.rpc = f"http://127.0.0.1:{rpc_port}"
        self.env = {"SAHARA_NODE_RPC_URL": self.rpc}
        sahara(self.home, self.env, "init")
        sahara(self.home, self.env, "node", "start", "--dev", "--rpc-addr", f"127.0.0.1:{rpc_port}")
        data = tmp / "notes.md"
        data.write_text("Okapis browse at dawn; counts are in the appendix.\n" * 20)
        added = sahara(self.home, self.env, "vault", "add", str(data), "--register")["items"][0]
        self.asset, self.cid = int(added["asset_id"]), str(added["cid"])
        offer = sahara(
            self.home, self.env, "license", "offer", str(self.asset), "--type", "long-term",
            "--price", "1", "--duration", "30d",
        )["offer_id"]  # fmt: skip
        node = NodeClient(self.rpc)
        self.chain = node.chain_id()
        self.licensee = Signer(os.urandom(32))
        self.attacker = Signer(os.urandom(32))
        node.call("sahara_dev_setBalance", self.licensee.address, hex(10**20))
        Protocol(node).buy(self.licensee, int(offer))
        node.close()

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "sahara_cli", "--no-prompt", "node", "stop"],
            env=env_for(self.home, ROOT, self.env),
            capture_output=True,
            check=False,
        )

    def request(self, who: Any, audience: str | None) -> dict[str, Any]:
        """A signed key request; ``audience`` None: the form of versions without one."""
        from sahara_cli.vault.access import KeyRequest

        request = KeyRequest(
            self.asset, self.cid, who.address, self.chain, int(time.time()),
            os.urandom(16).hex(), audience=audience or "",
        )  # fmt: skip
        return request.signed(who)


class Server:
    def __init__(self, world: World, src: Path) -> None:
        import httpx

        self.addr = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.addr}"
        env = env_for(world.home, src, world.env | {"SAHARA_VAULT_SERVE_ADDR": self.addr})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sahara_cli", "--no-prompt", "vault", "serve"],
            cwd=src,  # -m puts the working directory first on sys.path
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vault serve of {src} exited")
            try:
                httpx.get(self.url + "/v1/info", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("vault serve did not answer in 60 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def legit(world: World, url: str, audience: str | None) -> tuple[float, bool]:
    """One key request by the licensee: seconds taken, and whether it got the key."""
    import httpx

    body = world.request(world.licensee, audience)
    start = time.perf_counter()
    try:
        answer = httpx.post(url + "/v1/keys", json=body, timeout=30)
        ok = answer.status_code == 200 and "wrapped_key" in answer.json()
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - start, ok


def bogus_bodies(world: World, count: int, audience: str | None) -> list[bytes]:
    replayed = world.request(world.attacker, audience)
    bodies = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            body = world.request(world.attacker, audience)
        elif kind == 1:
            body = {**replayed, "address": world.licensee.address, "nonce": os.urandom(16).hex()}
        elif kind == 2:
            body = replayed
        else:
            body = world.request(world.attacker, "http://10.9.8.7:8547" if audience else None)
        bodies.append(json.dumps(body).encode())
    return bodies


def flood(url: str, bodies: list[bytes], concurrency: int, statuses: list[int]) -> None:
    import aiohttp

    async def main() -> None:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            queue = iter(bodies)

            async def worker() -> None:
                for body in queue:
                    try:
                        async with http.post(url + "/v1/keys", data=body) as answer:
                            await answer.read()
                            statuses.append(answer.status)
                    except (TimeoutError, aiohttp.ClientError):
                        statuses.append(0)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def ms(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "max_ms": None}
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
    }


def measure(world: World, src: Path, new_format: bool, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(world, src)
    audience = server.url if new_format else None
    try:
        quiet = [legit(world, server.url, audience) for _ in range(args.legit)]
        bodies = bogus_bodies(world, args.requests, audience)
        statuses: list[int] = []
        thread = threading.Thread(
            target=flood, args=(server.url, bodies, args.concurrency, statuses)
        )
        start = time.perf_counter()
        thread.start()
        during = []
        while thread.is_alive() and len(during) < args.legit:
            during.append(legit(world, server.url, audience))
            time.sleep(0.1)
        thread.join()
        seconds = time.perf_counter() - start
    finally:
        server.stop()
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return {
        "quiet": {**ms([t for t, _ in quiet]), "got_key": sum(ok for _, ok in quiet)},
        "flood": {
            **ms([t for t, _ in during]),
            "legit_requests": len(during),
            "got_key": sum(ok for _, ok in during),
        },
        "rate": {
            "bogus_per_s": round(len(statuses) / seconds, 1),
            "seconds": round(seconds, 2),
            "keys_released_to_bogus": counts.get("200", 0),
            "by_status": counts,
        },
    }


def table(results: dict[str, dict[str, Any]]) -> None:
    rows = [
        ("quiet legit p50 ms", ("quiet", "p50_ms")),
        ("quiet legit max ms", ("quiet", "max_ms")),
        ("flood legit p50 ms", ("flood", "p50_ms")),
        ("flood legit max ms", ("flood", "max_ms")),
        ("flood legit got key", ("flood", "got_key")),
        ("flood legit asked", ("flood", "legit_requests")),
        ("bogus answered /s", ("rate", "bogus_per_s")),
        ("keys to bogus", ("rate", "keys_released_to_bogus")),
    ]
    names = list(results)
    print(f"{'metric':<22}" + "".join(f"{name:>14}" for name in names))
    for label, (part, key) in rows:
        cells = []
        for name in names:
            value = results[name][part].get(key)
            cells.append(f"{value:>14}" if value is not None else f"{'-':>14}")
        print(f"{label:<22}" + "".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--legit", type=int, default=10)
    parser.add_argument("--peer-src", type=Path, help="a checkout of another version")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    doc: dict[str, Any] = {"benchmark": "vault_serve_flood", "machine": machine(), "error": None}
    doc["settings"] = {k: v for k, v in vars(args).items() if k != "json_out"} | {
        "peer_src": str(args.peer_src) if args.peer_src else None
    }
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sahara-flood-") as tmp:
        say("starting a dev node and registering a licensed asset")
        world = World(Path(tmp))
        try:
            if args.peer_src:
                say(f"peer: vault serve of {args.peer_src}")
                results["peer"] = measure(world, args.peer_src, False, args)
            say("target: vault serve of this tree")
            results["target"] = measure(world, ROOT, True, args)
        except Exception as exc:  # report what was measured, and why it stopped
            doc["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            world.stop()
    doc["results"] = results
    if results:
        table(results)
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
