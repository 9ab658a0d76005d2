"""``sahara doctor``: check the installation, the home and the services sahara uses.

Each check gives one :class:`Check` with a status and, when something is off, a hint
that says how to fix it. Checks never change anything.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Literal

from sahara_cli.errors import SaharaError
from sahara_cli.fsutil import PRIVATE_DIR, PRIVATE_FILE, loose_bits
from sahara_cli.home import Home
from sahara_cli.results import Result

Status = Literal["ok", "warn", "fail", "skip"]
DISTRIBUTION = "sahara-cli"
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None
    #: For an external program: its version, its path and where it was found
    #: (``setting``: a flag or config key, ``env``, ``cache`` or ``PATH``).
    version: str | None = None
    path: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _requirement_name(requirement: str) -> tuple[str, str | None]:
    """(distribution name, extra or None) of a ``Requires-Dist`` line."""
    name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
    extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
    return name, extra.group(1) if extra else None


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", "ok", f"Python {version} ({sys.executable})")
    return Check("python", "fail", f"Python {version} is too old", "Install Python 3.11 or newer.")


def check_packages() -> Iterator[Check]:
    """The core dependencies, then each extra: installed or not."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        yield Check("package", "fail", f"{DISTRIBUTION} is not installed", "pip install sahara-cli")
        return
    yield Check("package", "ok", f"{DISTRIBUTION} {dist.version}")
    by_extra: dict[str | None, list[str]] = {}
    for requirement in dist.requires or []:
        name, extra = _requirement_name(requirement)
        by_extra.setdefault(extra, []).append(name)
    for extra in [None, *sorted(e for e in by_extra if e)]:
        missing = []
        for name in by_extra.get(extra, []):
            try:
                metadata.version(name)
            except metadata.PackageNotFoundError:
                missing.append(name)
        label = "dependencies" if extra is None else f"extra {extra}"
        if not missing:
            yield Check(label, "ok", f"{len(by_extra.get(extra, []))} packages installed")
        elif extra is None:
            yield Check(
                label,
                "fail",
                "missing: " + ", ".join(missing),
                "pip install --force-reinstall sahara-cli",
            )
        else:
            yield Check(
                label,
                "skip",
                f"not installed ({len(missing)} missing)",
                f"pip install 'sahara-cli[{extra}]'",
            )


def check_home(home: Home) -> Iterator[Check]:
    if not home.root.is_dir():
        yield Check("home", "warn", f"{home.root} does not exist", "Run 'sahara init'.")
        return
    loose = loose_bits(home.root, PRIVATE_DIR)
    if loose:
        yield Check(
            "home",
            "warn",
            f"{home.root} is mode {home.root.stat().st_mode & 0o777:o}",
            f"chmod 700 {home.root}",
        )
    else:
        yield Check("home", "ok", str(home.root))
    keystore = home.keystore_dir
    if not keystore.is_dir():
        yield Check(
            "keystore",
            "warn",
            "no keystore directory",
            "Run 'sahara init' or 'sahara id create NAME'.",
        )
        return
    problems = []
    if loose_bits(keystore, PRIVATE_DIR):
        problems.append(f"chmod 700 {keystore}")
    files = sorted(keystore.glob("*.json"))
    problems += [f"chmod 600 {f}" for f in files if loose_bits(f, PRIVATE_FILE)]
    if problems:
        yield Check("keystore", "fail", "keys are readable by other users", "; ".join(problems))
    else:
        yield Check("keystore", "ok", f"{len(files)} ID(s), private modes")


def check_config(home: Home) -> tuple[Check, Any]:
    from sahara_cli.config import load_config

    try:
        loaded = load_config(home.config_file)
    except SaharaError as exc:
        return Check("config", "fail", exc.message, exc.hint), None
    where = str(home.config_file) if home.config_file.exists() else "defaults (no config file)"
    return Check("config", "ok", where), loaded


def check_default_id(home: Home, loaded: Any) -> Check:
    from sahara_cli.identity.store import KeyStore

    default = loaded.config.identity.default
    if not default:
        return Check("default ID", "warn", "none set", "Run 'sahara id use NAME'.")
    try:
        info = KeyStore(home.keystore_dir, default=default).get(default)
    except SaharaError as exc:
        return Check("default ID", "fail", exc.message, exc.hint)
    return Check("default ID", "ok", f"{info.name} {info.address}")


def rpc_call(url: str, method: str, timeout: float, params: list[Any] | None = None) -> Any:
    """One JSON-RPC call with the standard library (doctor must work without extras)."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    ).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310  # http(s) only
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(reply["error"].get("message", "error"))
    return reply.get("result")


def check_node(loaded: Any) -> Check:
    url = loaded.config.node.rpc_url
    if not url.startswith(("http://", "https://")):
        return Check("node", "skip", f"{url}: only HTTP endpoints are checked")
    try:
        client = rpc_call(url, "web3_clientVersion", min(loaded.config.node.timeout, 3.0))
        chain_id = int(rpc_call(url, "eth_chainId", min(loaded.config.node.timeout, 3.0)), 16)
    except (OSError, urllib.error.URLError, ValueError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "node",
            "warn",
            f"{url} is not reachable ({reason})",
            "Start a node, or point node.rpc_url at one: sahara config set node.rpc_url URL",
        )
    return Check("node", "ok", f"{url}: {client}, chain id {chain_id}")


def check_vault(home: Home, loaded: Any) -> Iterator[Check]:
    """The vault's catalogue, read only (Kubo is checked with the other programs)."""
    cfg = loaded.config.vault
    catalogue = home.root / "vault" / "vault.db"
    if catalogue.exists():
        import sqlite3

        try:
            uri = f"file:{catalogue}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=5) as conn:
                items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            yield Check("vault", "ok", f"{items} item(s), backend {cfg.backend}")
        except sqlite3.Error as exc:
            yield Check(
                "vault", "fail", f"{catalogue} cannot be read: {exc}", "Move the file away."
            )
    else:
        yield Check("vault", "ok", f"empty, backend {cfg.backend}")


def check_agents(home: Home) -> Iterator[Check]:
    """The models agents can run."""
    from sahara_cli.agent.runners.model_store import ModelStore
    from sahara_cli.errors import SaharaError

    try:
        store = ModelStore(home.root)
        entries = store.list()
        default = store.default
    except SaharaError as exc:
        yield Check("models", "fail", exc.message, exc.hint)
        return
    if not entries:
        yield Check(
            "models",
            "skip",
            "no model in the store: agents cannot answer yet",
            "Add one: 'sahara model pull REPO FILE', 'sahara model add PATH', "
            "or 'sahara model demo' for a tiny offline one.",
        )
        return
    yield Check("models", "ok", f"{len(entries)} model(s), default {default or '-'}")


def run_checks(home: Home) -> list[Check]:
    from sahara_cli.doctor_tools import check_tools

    checks = [check_python(), *check_packages(), *check_home(home)]
    config_check, loaded = check_config(home)
    checks.append(config_check)
    if loaded is not None:
        if home.keystore_dir.is_dir():
            checks.append(check_default_id(home, loaded))
        checks.append(check_node(loaded))
        if home.root.is_dir():
            checks.extend(check_vault(home, loaded))
            checks.extend(check_agents(home))
    vault = loaded.config.vault if loaded is not None else None
    checks.extend(check_tools(vault))
    return checks


class DoctorReport(Result):
    """``sahara doctor``: every check and whether all passed (warnings do not fail)."""

    ok: bool
    checks: list[Check]
