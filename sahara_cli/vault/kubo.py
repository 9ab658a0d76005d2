"""The Kubo backend: blocks in a real IPFS node, over Kubo's HTTP RPC API.

:class:`KuboBlockstore` speaks to any Kubo RPC endpoint (``POST /api/v0/...``);
:class:`KuboDaemon` creates, starts, stops and inspects the Kubo daemon that
``sahara vault daemon`` runs on a repo under the home; :func:`find_ipfs` finds the
``ipfs`` binary.

Notes on how Kubo behaves (v0.39):

- Blocks are stored by multihash, so ``refs/local`` lists every block as CIDv1
  ``raw`` whatever codec it was put with; :meth:`KuboBlockstore.cids` passes that on
  (:class:`~sahara_cli.vault.local.LocalBlockstore` does the same).
- ``block/get`` and ``block/stat`` of a block the node lacks wait for the network
  forever unless ``offline=true``; the store reads offline by default. ``pin/add``
  ignores ``offline``, so :meth:`KuboBlockstore.pin` first checks the DAG is complete
  with ``dag/stat?offline=true`` and gives ``pin/add`` a timeout.
- ``put_many`` sends CARs of a few MiB to ``dag/import`` (which checks every block
  against its CID): 2-3x the throughput of one ``block/put`` per block.
- A fresh repo pins the empty UnixFS directory ``QmUNLLs…`` (Kubo's own), so
  :meth:`KuboBlockstore.pins` lists it too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from sahara_cli.errors import (
    VaultBackendError,
    VaultBackendUnreachable,
    VaultBlockCorrupt,
    VaultBlockNotFound,
    VaultCidInvalid,
    VaultError,
    VaultExists,
    VaultKuboMissing,
    VaultNotSetUp,
    VaultPortInUse,
)
from sahara_cli.fsutil import atomic_write, ensure_private_dir
from sahara_cli.vault.blockstore import Blockstore, GCResult, StoreStat
from sahara_cli.vault.cid import CID, DAG_PB, RAW
from sahara_cli.vault.local import WriterLock

#: Bytes of blocks per ``dag/import`` request in :meth:`KuboBlockstore.put_many`.
BATCH_BYTES = 4 << 20
#: ``dag/import`` requests in flight at once (measured best on a 2-core machine).
IMPORTS_IN_FLIGHT = 2
_NOT_FOUND_MARKERS = ("not found locally", "could not find", "block not found")


def find_ipfs(configured: str | None = None) -> str:
    """The Kubo binary: ``configured`` (vault.ipfs_bin), then ``$SAHARA_IPFS_BIN``, then
    the project's cache, then ``ipfs`` on PATH (:func:`sahara_cli.gobin.find_binary`).
    Raises VaultKuboMissing."""
    from sahara_cli.gobin import KUBO, find_binary

    return find_binary(KUBO, configured)


def multiaddr_to_url(addr: str) -> str:
    """``/ip4/127.0.0.1/tcp/5001`` -> ``http://127.0.0.1:5001`` (0.0.0.0 -> loopback)."""
    parts = addr.strip().split("/")
    if len(parts) < 5 or parts[0] != "" or parts[3] != "tcp":
        raise VaultBackendError(f"cannot use the Kubo API address {addr!r}: not /ipX/HOST/tcp/PORT")
    proto, host, port = parts[1], parts[2], parts[4]
    if proto == "ip4":
        host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - reading, not binding
    elif proto == "ip6":
        host = "[::1]" if host == "::" else f"[{host}]"
    elif proto not in ("dns", "dns4", "dns6"):
        raise VaultBackendError(f"cannot use the Kubo API address {addr!r}: unknown {proto!r}")
    scheme = "https" if "https" in parts[5:] else "http"
    return f"{scheme}://{host}:{port}"


def _kubo_message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str):
        return str(doc["Message"])
    text = response.text.strip().splitlines()
    return text[0][:200] if text else f"HTTP {response.status_code}"


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("localhost", "::1") or host.startswith("127.")


def _is_not_found(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _NOT_FOUND_MARKERS)


class KuboBlockstore(Blockstore):
    """A :class:`Blockstore` over Kubo's RPC API at ``api_url`` (``http://host:port``).

    ``offline`` (default) reads only what the node holds; ``offline=False`` lets
    ``get`` and ``pin`` fetch missing blocks from peers (bounded by ``timeout``).
    ``lock_path`` makes puts, pins and gc take the same writers' lock that
    :class:`~sahara_cli.vault.local.LocalBlockstore` uses, so a sahara gc never runs
    between another sahara process's puts and its pin.
    """

    name = "kubo"

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 60.0,
        offline: bool = True,
        batch_bytes: int = BATCH_BYTES,
        lock_path: Path | None = None,
        gc_wait: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.offline = offline
        self.batch_bytes = batch_bytes
        self._client = httpx.Client(
            base_url=self.api_url + "/api/v0/",
            timeout=httpx.Timeout(timeout, connect=5.0),
            # An HTTP(S)_PROXY from the environment must not catch a daemon on loopback.
            trust_env=not _is_loopback(self.api_url),
        )
        self._lock: WriterLock | None = None
        if lock_path is not None:
            self._lock = WriterLock(lock_path, gc_wait=gc_wait)

    # -- transport --------------------------------------------------------------------

    def _offline(self) -> dict[str, str]:
        return {"offline": "true"} if self.offline else {}

    def _check(self, response: httpx.Response, command: str) -> None:
        if response.status_code == 200:
            return
        if response.status_code in (404, 405) and "json" not in response.headers.get(
            "content-type", ""
        ):
            raise VaultBackendError(
                f"{self.api_url} is not a Kubo RPC API ({command}: HTTP {response.status_code})",
                hint="Point vault.ipfs_api at Kubo's API address (see the repo's 'api' file).",
            )
        raise VaultBackendError(f"Kubo {command} failed: {_kubo_message(response)}")

    def _unreachable(self, exc: httpx.HTTPError, command: str) -> VaultBackendUnreachable:
        if isinstance(exc, httpx.TimeoutException):
            return VaultBackendUnreachable(
                f"the IPFS daemon at {self.api_url} did not answer {command} "
                f"within {self.timeout:g} s"
            )
        if isinstance(exc, httpx.ConnectError):
            return VaultBackendUnreachable(f"no IPFS daemon answers at {self.api_url}")
        return VaultBackendUnreachable(f"the IPFS daemon at {self.api_url} failed: {exc}")

    def call(
        self,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        files: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """POST ``/api/v0/<command>`` and return the answer (errors translated)."""
        try:
            response = self._client.post(
                command,
                params=params,
                files=files,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, command) from None
        self._check(response, command)
        return response

    def call_json(self, command: str, params: dict[str, Any] | None = None) -> Any:
        response = self.call(command, params)
        try:
            return response.json()
        except ValueError:
            raise VaultBackendError(f"Kubo {command} answered with something not JSON") from None

    def stream(self, command: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """The JSON objects of a streamed answer (one per line)."""
        try:
            with self._client.stream("POST", command, params=params) as response:
                if response.status_code != 200:
                    response.read()
                    self._check(response, command)
                for line in response.iter_lines():
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError:
                            raise VaultBackendError(
                                f"Kubo {command} answered with a line that is not JSON"
                            ) from None
                trailer = response.headers.get("x-stream-error")
                if trailer:
                    raise VaultBackendError(f"Kubo {command} failed: {trailer}")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, command) from None

    # -- blocks -----------------------------------------------------------------------

    @staticmethod
    def _codec(cid: CID) -> str:
        if cid.codec not in (RAW, DAG_PB):
            raise VaultCidInvalid(
                f"cannot store block {cid}: codec {cid.codec_name} (the vault stores raw "
                "and dag-pb)"
            )
        return cid.codec_name

    @staticmethod
    def _verify_input(cid: CID, data: bytes) -> None:
        if not cid.verify(data):
            raise VaultBlockCorrupt(
                f"refusing to store block {cid}: the bytes given do not hash to it",
                hint="This is a bug in the caller: compute the CID from the bytes.",
            )

    def put(self, cid: CID, data: bytes) -> None:
        codec = self._codec(cid)
        self._verify_input(cid, data)
        if self._lock is not None:
            self._lock.shared()
        doc = self.call(
            "block/put",
            {"cid-codec": codec, "mhtype": "sha2-256", "pin": "false"},
            files={"file": ("block", data, "application/octet-stream")},
        ).json()
        stored = CID.decode(str(doc.get("Key", "")))
        if stored.v1() != cid.v1():
            raise VaultBlockCorrupt(f"Kubo stored block {cid} as {stored}: the CIDs differ")

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Send the blocks as CARv1 files of about ``batch_bytes`` to ``dag/import``,
        two requests in flight (the next CAR is built while Kubo stores the last)."""
        if self._lock is not None:
            self._lock.shared()
        pending: deque[Future[None]] = deque()
        with ThreadPoolExecutor(max_workers=IMPORTS_IN_FLIGHT) as pool:
            try:
                for batch in self._batches(blocks):
                    if len(pending) >= IMPORTS_IN_FLIGHT:
                        pending.popleft().result()
                    pending.append(pool.submit(self._import, batch))
                while pending:
                    pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _batches(self, blocks: Iterable[tuple[CID, bytes]]) -> Iterator[list[tuple[CID, bytes]]]:
        batch: list[tuple[CID, bytes]] = []
        size = 0
        for cid, data in blocks:
            self._codec(cid)
            self._verify_input(cid, data)
            batch.append((cid, data))
            size += len(data)
            if size >= self.batch_bytes:
                yield batch
                batch = []
                size = 0
        if batch:
            yield batch

    def _import(self, batch: list[tuple[CID, bytes]]) -> None:
        from sahara_cli.vault import car

        buffer = io.BytesIO()
        # A root is required by older go-car readers; pin-roots=false leaves it unpinned.
        car.write_car(buffer, [batch[0][0]], batch)
        doc = self._import_call(buffer.getvalue())
        stats = doc.get("Stats") if isinstance(doc, dict) else None
        count = stats.get("BlockCount") if isinstance(stats, dict) else None
        if count is not None and count != len(batch):
            raise VaultBackendError(
                f"Kubo dag/import stored {count} blocks of the {len(batch)} sent"
            )

    def _import_call(self, payload: bytes) -> Any:
        response = self.call(
            "dag/import",
            {"pin-roots": "false", "stats": "true"},
            files={"file": ("blocks.car", payload, "application/vnd.ipld.car")},
        )
        stats: Any = None
        for line in response.text.splitlines():
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "Stats" in doc:
                stats = doc
        return stats

    def get(self, cid: CID) -> bytes:
        try:
            data = self.call("block/get", {"arg": cid.encode(), **self._offline()}).content
        except VaultBackendError as exc:
            if _is_not_found(exc.message):
                raise VaultBlockNotFound(
                    f"block {cid} is not in the IPFS node at {self.api_url}"
                ) from None
            raise
        if not cid.verify(data):
            raise VaultBlockCorrupt(f"block {cid} from the IPFS node does not match its CID")
        return data

    def block_size(self, cid: CID) -> int | None:
        """The size of a block the node holds, or None."""
        try:
            doc = self.call_json("block/stat", {"arg": cid.encode(), "offline": "true"})
        except VaultBackendError as exc:
            if _is_not_found(exc.message):
                return None
            raise
        return int(doc.get("Size", 0))

    def has(self, cid: CID) -> bool:
        return self.block_size(cid) is not None

    def delete(self, cid: CID) -> None:
        for doc in self.stream("block/rm", {"arg": cid.encode(), "force": "true"}):
            error = doc.get("Error") if isinstance(doc, dict) else None
            if error and not _is_not_found(str(error)):
                hint = "Unpin its root first." if "pinned" in str(error) else None
                raise VaultBackendError(f"Kubo cannot delete block {cid}: {error}", hint=hint)

    def cids(self) -> Iterator[CID]:
        for doc in self.stream("refs/local"):
            if not isinstance(doc, dict):
                continue
            if doc.get("Err"):
                raise VaultBackendError(f"Kubo refs/local failed: {doc['Err']}")
            ref = doc.get("Ref")
            if ref:
                yield CID.decode(str(ref))

    # -- pins -------------------------------------------------------------------------

    def pin(self, root: CID) -> None:
        if self._lock is not None:
            self._lock.shared()
        if self.offline:
            # pin/add would wait for the network for a missing block: check first.
            try:
                self.call_json(
                    "dag/stat", {"arg": root.encode(), "offline": "true", "progress": "false"}
                )
            except VaultBackendError as exc:
                if not _is_not_found(exc.message):
                    raise
                raise self._missing(root, exc.message) from None
        self.call(
            "pin/add",
            {"arg": root.encode(), "recursive": "true", "timeout": f"{self.timeout:g}s"},
            timeout=self.timeout + 5,
        )

    @staticmethod
    def _missing(root: CID, message: str) -> VaultBlockNotFound:
        found = re.search(r"could not find (b[a-z2-7]+|Qm[1-9A-HJ-NP-Za-km-z]+)", message)
        if found is None:
            return VaultBlockNotFound(f"cannot pin {root}: a block below it is missing ({message})")
        try:
            missing = CID.decode(found.group(1))
        except VaultCidInvalid:
            return VaultBlockNotFound(f"cannot pin {root}: block {found.group(1)} is missing")
        if missing.digest == root.digest:
            return VaultBlockNotFound(f"cannot pin {root}: it is not in the IPFS node")
        return VaultBlockNotFound(f"cannot pin {root}: block {missing} below it is missing")

    def unpin(self, root: CID) -> None:
        try:
            self.call("pin/rm", {"arg": root.encode()})
        except VaultBackendError as exc:
            if "not pinned" not in exc.message:
                raise

    def _pin_keys(self, kind: str) -> list[CID]:
        doc = self.call_json("pin/ls", {"type": kind})
        keys = doc.get("Keys") if isinstance(doc, dict) else None
        return [CID.decode(key) for key in (keys or {})]

    def pins(self) -> list[CID]:
        return self._pin_keys("recursive")

    # -- gc and stat ------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False) -> GCResult:
        """``repo/gc``. Sizes of the blocks it will remove are read first (``block/stat``
        of every unpinned block), since Kubo reports only their CIDs; ``dry_run`` stops
        there."""
        lock = self._lock.exclusive() if self._lock is not None else contextlib.nullcontext()
        with lock:
            pinned = {cid.digest for cid in self._pin_keys("all")}
            sizes: dict[bytes, int] = {}
            for cid in list(self.cids()):
                if cid.digest not in pinned:
                    size = self.block_size(cid)
                    if size is not None:
                        sizes[cid.digest] = size
            if dry_run:
                return GCResult(removed_blocks=len(sizes), removed_bytes=sum(sizes.values()))
            removed = removed_bytes = 0
            for doc in self.stream("repo/gc", {"stream-errors": "true"}):
                if not isinstance(doc, dict):
                    continue
                if doc.get("Error"):
                    raise VaultBackendError(f"Kubo repo/gc failed: {doc['Error']}")
                key = doc.get("Key")
                text = key.get("/") if isinstance(key, dict) else key
                if not text:
                    continue
                removed += 1
                removed_bytes += sizes.get(CID.decode(str(text)).digest, 0)
        return GCResult(removed_blocks=removed, removed_bytes=removed_bytes)

    def stat(self) -> StoreStat:
        """Blocks and the repo's size on disk (``repo/stat``: blocks plus Kubo's own
        datastore, so a little more than the blocks' bytes)."""
        doc = self.call_json("repo/stat")
        path = doc.get("RepoPath") or ""
        location = f"{self.api_url} ({path})" if path else self.api_url
        return StoreStat(
            blocks=int(doc.get("NumObjects", 0)),
            bytes=int(doc.get("RepoSize", 0)),
            location=location,
        )

    def close(self) -> None:
        self._client.close()
        if self._lock is not None:
            self._lock.release()


# -- the daemon --------------------------------------------------------------------------

PID_FILE = "sahara-daemon.pid"
LOG_FILE = "daemon.log"
#: A log above this size is moved to daemon.log.1 when the daemon starts.
LOG_KEEP_BYTES = 8 << 20
_PORT_IN_USE = re.compile(r"listen (?:tcp|udp)[46]? (\S+?):? bind: address already in use")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    return [line.strip() for line in lines if line.strip()][-count:]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as dead)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _is_ipfs_daemon(pid: int) -> bool:
    """False when /proc shows ``pid`` is some other program (a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS) or not ours to read: trust the pid file
    return b"daemon" in argv


class KuboDaemon:
    """The Kubo daemon of one repo (``IPFS_PATH``), run detached by sahara.

    Files in the repo besides Kubo's own: ``sahara-daemon.pid`` while it runs and
    ``daemon.log`` (its output, appended).
    """

    def __init__(self, repo: Path, ipfs_bin: str) -> None:
        self.repo = Path(repo)
        self.ipfs_bin = ipfs_bin
        self.pid_file = self.repo / PID_FILE
        self.log_file = self.repo / LOG_FILE
        self._process: subprocess.Popen[bytes] | None = None

    # -- repo -------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.repo / "config"

    def initialized(self) -> bool:
        return self.config_file.is_file()

    def _env(self) -> dict[str, str]:
        """The environment of ``ipfs`` commands and of the daemon (which outlives the
        process that starts it): sahara's own variables stay out, the ID's password
        and an A2A team secret among them; Kubo reads none of them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
        return {**env, "IPFS_PATH": str(self.repo), "IPFS_TELEMETRY": "off"}

    def _missing_binary(self, exc: OSError) -> VaultKuboMissing:
        return VaultKuboMissing(f"cannot run Kubo's binary {self.ipfs_bin}: {exc.strerror or exc}")

    def config(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            raise VaultNotSetUp(
                f"no IPFS repo at {self.repo}",
                hint="Run 'sahara vault daemon start' to create it.",
                code="vault.kubo_no_repo",
            ) from None
        except (OSError, ValueError) as exc:
            raise VaultBackendError(
                f"cannot read the IPFS config {self.config_file}: {exc}"
            ) from None
        if not isinstance(doc, dict):
            raise VaultBackendError(f"the IPFS config {self.config_file} is not a JSON object")
        return doc

    def init(
        self,
        local_only: bool = True,
        *,
        api_port: int | None = None,
        gateway_port: int | None = None,
        swarm_port: int | None = None,
    ) -> str:
        """Create the repo; returns the node's peer ID.

        ``local_only``: the ``test`` profile (loopback swarm, no bootstrap peers, no
        MDNS, no AutoConf) plus ``Routing.Type`` none. Otherwise a normal repo that
        joins the IPFS network (swarm on Kubo's default 4001). Both keep the API and
        gateway on loopback, on free ports picked now (stable across restarts) unless
        given; a port of 0 lets the kernel pick one at each start (read it from the
        repo's ``api`` file). Kubo's telemetry is turned off.
        """
        if self.initialized():
            raise VaultExists(
                f"an IPFS repo exists already at {self.repo}",
                hint="Start it with 'sahara vault daemon start', or move it away first.",
                code="vault.kubo_repo_exists",
            )
        ensure_private_dir(self.repo)
        command = [self.ipfs_bin, "init", "--empty-repo"]
        if local_only:
            command.append("--profile=test")
        try:
            done = subprocess.run(  # noqa: S603 - the configured Kubo binary
                command, env=self._env(), capture_output=True, text=True, timeout=120, check=False
            )
        except OSError as exc:
            raise self._missing_binary(exc) from None
        except subprocess.TimeoutExpired:
            raise VaultBackendError(f"'ipfs init' did not finish in 120 s ({self.repo})") from None
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            raise VaultBackendError(
                f"'ipfs init' failed in {self.repo}: {lines[-1] if lines else done.returncode}"
            )
        config = self.config()

        def port(value: int | None) -> int:
            return free_port() if value is None else value

        addresses = config.setdefault("Addresses", {})
        addresses["API"] = f"/ip4/127.0.0.1/tcp/{port(api_port)}"
        addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{port(gateway_port)}"
        if local_only:
            addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{port(swarm_port)}"]
            config["Bootstrap"] = []
            config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
            config.setdefault("Routing", {})["Type"] = "none"
            config.setdefault("AutoConf", {})["Enabled"] = False
        elif swarm_port is not None:
            addresses["Swarm"] = [
                f"/ip4/0.0.0.0/tcp/{swarm_port}",
                f"/ip6/::/tcp/{swarm_port}",
                f"/ip4/0.0.0.0/udp/{swarm_port}/quic-v1",
                f"/ip6/::/udp/{swarm_port}/quic-v1",
            ]
        plugins = config.setdefault("Plugins", {})
        if not isinstance(plugins.get("Plugins"), dict):
            plugins["Plugins"] = {}
        plugins["Plugins"]["telemetry"] = {"Config": {"Mode": "off"}}
        self._write_config(config)
        return str(config.get("Identity", {}).get("PeerID", ""))

    def _write_config(self, config: dict[str, Any]) -> None:
        atomic_write(self.config_file, (json.dumps(config, indent=2) + "\n").encode())

    @property
    def peer_id(self) -> str | None:
        identity = self.config().get("Identity")
        return str(identity["PeerID"]) if isinstance(identity, dict) else None

    @property
    def api_url(self) -> str:
        """The RPC URL: from the repo's ``api`` file (written by a running daemon), else
        from ``Addresses.API`` in the config."""
        with contextlib.suppress(FileNotFoundError):
            text = (self.repo / "api").read_text().strip()
            if text:
                return multiaddr_to_url(text)
        addr = self.config().get("Addresses", {}).get("API")
        if isinstance(addr, list):
            addr = addr[0] if addr else None
        if not isinstance(addr, str) or not addr:
            raise VaultBackendError(f"the IPFS config {self.config_file} sets no Addresses.API")
        url = multiaddr_to_url(addr)
        if url.endswith(":0"):
            raise VaultBackendUnreachable(
                f"the IPFS daemon of {self.repo} is not running (its API port is chosen at start)"
            )
        return url

    # -- process ----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid in the pid file when that process still runs, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid) or not _is_ipfs_daemon(pid):
            return None
        return pid

    def _identify(self, url: str, timeout: float = 2.0) -> dict[str, Any] | None:
        """``/api/v0/id`` of the node at ``url`` when it is this repo's node."""
        try:
            response = httpx.post(f"{url}/api/v0/id", timeout=timeout, trust_env=False)
            doc = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("ID") != self.peer_id:
            return None
        return doc

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        """Start ``ipfs daemon`` detached and wait until its API answers; returns
        :meth:`status`. A daemon of this repo that runs already is left as it is."""
        if not self.initialized():
            self.config()  # raises "no IPFS repo"
        running = self.pid()
        if running is not None:
            with contextlib.suppress(VaultBackendError, VaultBackendUnreachable):
                if self._identify(self.api_url):
                    return self.status()
            raise VaultBackendError(
                f"an IPFS daemon of {self.repo} runs (pid {running}) but does not answer",
                hint="Stop it with 'sahara vault daemon stop', then start it again.",
            )
        with contextlib.suppress(VaultBackendError, VaultBackendUnreachable):
            if self._identify(self.api_url, timeout=1.0):
                return self.status()  # started outside sahara (no pid file): leave it be
        self.pid_file.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.log_file.stat().st_size > LOG_KEEP_BYTES:
                self.log_file.replace(self.log_file.with_name(LOG_FILE + ".1"))
        start_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            try:
                process = subprocess.Popen(  # noqa: S603 - the configured Kubo binary
                    [self.ipfs_bin, "daemon"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env(),
                    start_new_session=True,
                )
            except OSError as exc:
                raise self._missing_binary(exc) from None
        self._process = process
        atomic_write(self.pid_file, f"{process.pid}\n".encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._start_failure(code, start_offset)
            with contextlib.suppress(FileNotFoundError, VaultBackendError):
                text = (self.repo / "api").read_text().strip()
                if text and self._identify(multiaddr_to_url(text), timeout=1.0):
                    return self.status()
            time.sleep(0.05)
        self.stop()
        lines = self._log_since(start_offset)
        raise VaultBackendError(
            f"the IPFS daemon did not answer within {timeout:g} s"
            + (f": {lines[-1]}" if lines else ""),
            hint=f"See {self.log_file}.",
            code="vault.kubo_start_failed",
        )

    def _log_since(self, offset: int) -> list[str]:
        lines = _tail(self.log_file, 200)
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                text = fh.read(256 * 1024).decode("utf-8", "replace")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
        except OSError:
            pass
        return lines

    def _start_failure(self, code: int, offset: int) -> VaultError:
        lines = self._log_since(offset)
        for line in lines:
            match = _PORT_IN_USE.search(line)
            if match:
                address = match.group(1)
                key = self._address_key(address.rsplit(":", 1)[-1])
                return VaultPortInUse(
                    f"the IPFS daemon cannot listen on {address}"
                    + (f" ({key})" if key else "")
                    + ": the port is in use",
                    hint=f"Stop the program using it, or set another port in {key or 'Addresses'}"
                    f" of {self.config_file}.",
                    code="vault.kubo_port_in_use",
                    details={"log": lines[-10:]},
                )
        errors = [line for line in lines if line.lower().startswith("error")]
        reason = errors[-1] if errors else " | ".join(lines[-3:]) or "no output"
        return VaultBackendError(
            f"the IPFS daemon exited with status {code} before it was ready: {reason}",
            hint=f"See {self.log_file}.",
            code="vault.kubo_start_failed",
            details={"log": lines[-10:]},
        )

    def _address_key(self, port: str) -> str | None:
        """Which ``Addresses`` entry of the config listens on ``port``."""
        with contextlib.suppress(VaultBackendError):
            addresses = self.config().get("Addresses", {})
            for key in ("API", "Gateway", "Swarm"):
                value = addresses.get(key)
                for addr in value if isinstance(value, list) else [value]:
                    # /ip4/HOST/tcp/PORT/...: the port is the fifth part
                    if isinstance(addr, str) and addr.split("/")[4:5] == [port]:
                        return f"Addresses.{key}"
        return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the pid stopped, or None when
        none ran (a stale pid file is removed either way)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self._reap()
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 5.0)
            # A killed daemon leaves its api file behind; remove it so nobody dials it.
            (self.repo / "api").unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        self._reap()
        return pid

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.05)
        return not _alive(pid)

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None

    def status(self) -> dict[str, Any]:
        """``running``, ``pid``, ``api_url``, ``peer_id``, ``version``, ``repo_size``,
        ``repo`` and ``log`` (JSON-ready). A daemon started outside sahara on this repo
        counts as running when its API answers with this repo's peer ID."""
        pid = self.pid()
        data: dict[str, Any] = {
            "running": False,
            "pid": pid,
            "api_url": None,
            "peer_id": None,
            "version": None,
            "repo_size": None,
            "repo": str(self.repo),
            "log": str(self.log_file),
        }
        if not self.initialized():
            return data
        data["peer_id"] = self.peer_id
        try:
            url = self.api_url
        except (VaultBackendError, VaultBackendUnreachable):
            return data
        data["api_url"] = url
        ident = self._identify(url)
        if ident is None:
            data["running"] = pid is not None
            return data
        data["running"] = True
        agent = str(ident.get("AgentVersion", ""))
        data["version"] = agent.split("/")[1] if agent.startswith("kubo/") else agent or None
        with contextlib.suppress(httpx.HTTPError, ValueError):
            stat = httpx.post(
                f"{url}/api/v0/repo/stat",
                params={"size-only": "true"},
                timeout=5,
                trust_env=False,
            )
            if stat.status_code == 200:
                data["repo_size"] = int(stat.json().get("RepoSize", 0))
        return data
