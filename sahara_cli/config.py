"""Configuration: a TOML file in the home, checked by a pydantic model.

Precedence, highest first: command-line flag > environment variable
``SAHARA_<SECTION>_<KEY>`` > ``config.toml`` in the home > built-in default.

A file that cannot be parsed, or that holds an unknown key or a bad value, raises
:class:`~sahara_cli.errors.ConfigInvalid` naming the file, the key and the reason; such a
file is never overwritten.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sahara_cli.errors import ConfigInvalid, ConfigKeyUnknown, ConfigValueInvalid
from sahara_cli.fsutil import atomic_write
from sahara_cli.results import Result

ENV_PREFIX = "SAHARA_"
HEADER = (
    "# sahara configuration. Precedence: flag > SAHARA_<SECTION>_<KEY> > this file > default.\n"
    "# 'sahara config show' lists every key with its value and source; 'sahara config set'\n"
    "# rewrites this file from its values (comments other than this header are not kept).\n"
)

Source = str  # "default" | "file" | "env:NAME" | "flag"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IdentitySection(_Section):
    default: str | None = Field(
        None, description="Name of the Sahara ID used when --id is not given."
    )
    scrypt_n: int = Field(
        262144,
        description="scrypt work factor (N) for new keystores; a power of two, 2^10 to 2^20.",
    )

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        # 2^20 is the most a keystore may ask for when it is read back (keystore.MAX_SCRYPT_N).
        if not 1024 <= value <= 1 << 20 or value & (value - 1):
            raise ValueError("must be a power of two from 1024 to 1048576 (2^20)")
        return value


class NodeSection(_Section):
    rpc_url: str = Field(
        "http://127.0.0.1:8545", description="JSON-RPC endpoint of the node sahara talks to."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for a node reply.")
    rpc_addr: str = Field(
        "127.0.0.1:8545", description="HOST:PORT the local node serves JSON-RPC on ('node run')."
    )
    block_time: float = Field(
        0.0, ge=0, description="Seconds between blocks of the local node; 0 mines on every tx."
    )
    chain_id: int = Field(31313, gt=0, description="Chain id of a new local chain.")
    rpc_execution_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Seconds one eth_call, eth_estimateGas or debug_traceTransaction may run "
        "on the node ('node run').",
    )
    rpc_max_steps: int = Field(
        10_000_000,
        ge=1_000,
        description="EVM opcodes one eth_call, eth_estimateGas or debug_traceTransaction may "
        "execute on the node ('node run').",
    )
    rpc_max_trace_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65_536,
        description="Bytes of struct logs one debug_traceTransaction may return ('node run').",
    )

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must start with http://, https://, ws:// or wss://")
        return value


class VaultSection(_Section):
    backend: Literal["local", "kubo"] = Field(
        "local", description="Where blocks live: 'local' (files in the home) or 'kubo' (IPFS)."
    )
    ipfs_api: str | None = Field(
        None,
        description="Kubo RPC URL; unset uses the daemon of 'sahara vault daemon' in this home.",
    )
    ipfs_bin: str | None = Field(
        None,
        description="Kubo's ipfs binary; unset looks at SAHARA_IPFS_BIN, the cache, then PATH.",
    )
    serve_addr: str = Field(
        "127.0.0.1:8547", description="HOST:PORT 'sahara vault serve' releases keys and blocks on."
    )
    public_url: str | None = Field(
        None,
        description="URL licensees reach 'vault serve' at; written into registered assets.",
    )
    serve_rate_per_ip: float = Field(
        20.0,
        gt=0,
        description="Requests a second 'vault serve' takes from one remote IP (bursts of 2x).",
    )
    serve_rate_per_address: float = Field(
        5.0,
        gt=0,
        description="Key requests a second 'vault serve' takes from one Sahara address "
        "(bursts of 2x).",
    )
    embedder: Literal["onnx", "onnx-int8", "minilm", "sentence-transformers"] = Field(
        "onnx",
        description="all-MiniLM-L6-v2 for search: float on onnxruntime (the default), int8 "
        "on onnxruntime (faster, different best hits on close calls), float in numpy, or "
        "float through sentence-transformers. An index keeps its embedder.",
    )
    index: bool = Field(True, description="Embed text assets into the search index on add.")

    @field_validator("ipfs_api", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class LogSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the log file in <home>/logs/sahara.log."
    )
    max_bytes: int = Field(1_048_576, ge=4096, description="Size at which the log file rotates.")
    backups: int = Field(3, ge=0, le=100, description="Rotated log files kept.")


class Config(_Section):
    """The whole configuration. Sections map to TOML tables."""

    identity: IdentitySection = Field(default_factory=IdentitySection)
    node: NodeSection = Field(default_factory=NodeSection)
    vault: VaultSection = Field(default_factory=VaultSection)
    log: LogSection = Field(default_factory=LogSection)


@dataclass(frozen=True)
class KeyInfo:
    key: str  # dotted: "node.rpc_url"
    section: str
    name: str
    description: str
    env: str


def iter_keys() -> Iterator[KeyInfo]:
    """Every settable key, in declaration order."""
    for section, sfield in Config.model_fields.items():
        model = sfield.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for name, info in model.model_fields.items():
            yield KeyInfo(
                key=f"{section}.{name}",
                section=section,
                name=name,
                description=info.description or "",
                env=f"{ENV_PREFIX}{section.upper()}_{name.upper()}",
            )


def key_info(key: str) -> KeyInfo:
    for info in iter_keys():
        if info.key == key:
            return info
    raise ConfigKeyUnknown(f"unknown config key '{key}'")


@dataclass
class LoadedConfig:
    """A validated config together with where each value came from."""

    config: Config
    path: Path | None
    sources: dict[str, Source] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        info = key_info(key)
        return getattr(getattr(self.config, info.section), info.name)

    def items(self) -> Iterator[tuple[KeyInfo, Any, Source]]:
        for info in iter_keys():
            yield info, self.get(info.key), self.sources[info.key]


def read_file(path: Path) -> dict[str, Any]:
    """The raw TOML table of ``path``; ``{}`` when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"{path}: cannot read: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"{path}: not valid TOML: {exc}") from exc


def read_valid_file(path: Path) -> dict[str, Any]:
    """The raw table of ``path`` after checking it against the model.

    Raises :class:`ConfigInvalid` naming the file, the first bad key and the reason.
    """
    tree = read_file(path)
    try:
        Config.model_validate(tree)
    except ValidationError as exc:
        key, reason = _validation_message(exc)
        raise ConfigInvalid(f"{path}: key '{key}': {reason}") from exc
    return tree


def _validation_message(exc: ValidationError) -> tuple[str, str]:
    """(dotted key, reason) of the first error pydantic found."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    reason = err["msg"]
    if err["type"] == "extra_forbidden":
        reason = "unknown key"
    return key, reason


def _set(tree: dict[str, Any], info: KeyInfo, value: Any) -> None:
    section = tree.setdefault(info.section, {})
    if not isinstance(section, dict):
        raise ConfigInvalid(f"'{info.section}' must be a table")
    section[info.name] = value


def load_config(
    path: Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load ``path`` and apply environment variables and flag ``overrides`` (dotted keys).

    ``path=None`` skips the file: defaults, environment and overrides only.
    """
    environ = os.environ if environ is None else environ
    tree = read_valid_file(path) if path is not None else {}

    sources: dict[str, Source] = {}
    for info in iter_keys():
        if info.name in tree.get(info.section, {}):
            sources[info.key] = "file"
    for info in iter_keys():
        if info.env in environ:
            _set(tree, info, environ[info.env])
            try:
                Config.model_validate(tree)
            except ValidationError as exc:
                _, reason = _validation_message(exc)
                raise ConfigInvalid(
                    f"environment variable {info.env} (key '{info.key}'): {reason}",
                    hint=f"Fix or unset {info.env}.",
                ) from exc
            sources[info.key] = f"env:{info.env}"
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        info = key_info(key)
        _set(tree, info, value)
        sources[key] = "flag"
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        key, reason = _validation_message(exc)
        raise ConfigValueInvalid(f"option for '{key}': {reason}") from exc
    for info in iter_keys():
        sources.setdefault(info.key, "default")
    return LoadedConfig(config=config, path=path, sources=sources)


def _write(path: Path, tree: dict[str, Any]) -> None:
    import tomli_w

    cleaned = {k: v for k, v in tree.items() if v}
    atomic_write(path, (HEADER + tomli_w.dumps(cleaned)).encode("utf-8"))


def set_value(path: Path, key: str, raw: str) -> Any:
    """Validate ``raw`` for ``key`` and store it in the file; returns the typed value.

    The existing file must parse and validate first: a broken file is never rewritten.
    """
    info = key_info(key)
    tree = read_valid_file(path)
    _set(tree, info, raw)
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        _, reason = _validation_message(exc)
        raise ConfigValueInvalid(f"invalid value for '{key}': {reason}") from exc
    value = getattr(getattr(config, info.section), info.name)
    _set(tree, info, value)
    _write(path, tree)
    return value


def write_defaults(path: Path) -> None:
    """Start a config file holding only the header: every key at its default."""
    _write(path, {})


def unset_value(path: Path, key: str) -> bool:
    """Remove ``key`` from the file so its default applies; False if it was not set."""
    info = key_info(key)
    tree = read_valid_file(path)
    section = tree.get(info.section, {})
    if info.name not in section:
        return False
    del section[info.name]
    _write(path, tree)
    return True


# -- the results of 'sahara config', and the workflows that make them -------------------

#: The value of one key, as TOML and JSON hold it.
Value = str | int | float | bool | None


class ConfigReport(Result):
    """``config show``: every key's effective value, and where each comes from."""

    path: Path = Field(description="the config file")
    exists: bool = Field(description="whether the config file exists")
    values: Config = Field(description="effective values, by section")
    sources: dict[str, str] = Field(
        description="dotted key -> 'default', 'file', 'env:SAHARA_...' or 'flag'"
    )


class ConfigValue(Result):
    """``config get``: the effective value of one key and its source."""

    key: str
    value: Value
    source: str = Field(description="'default', 'file', 'env:SAHARA_...' or 'flag'")


class ConfigChange(Result):
    """``config set``: the value written, converted to the key's type."""

    key: str
    value: Value
    path: Path


class ConfigRemoval(Result):
    """``config unset``: whether the key was in the file."""

    key: str
    removed: bool
    path: Path


class ConfigLocation(Result):
    """``config path``: where the config file is (or would be)."""

    path: Path
    exists: bool


def show_config(loaded: LoadedConfig, path: Path) -> ConfigReport:
    """Every key of ``loaded`` with its value and source; ``path`` is the home's file."""
    return ConfigReport(
        path=path,
        exists=path.exists(),
        values=loaded.config,
        sources={info.key: source for info, _, source in loaded.items()},
    )


def get_setting(loaded: LoadedConfig, key: str) -> ConfigValue:
    """The effective value of ``key`` (raises ``config.unknown_key``)."""
    value = loaded.get(key)
    return ConfigValue(key=key, value=value, source=loaded.sources.get(key, "default"))


def set_setting(path: Path, key: str, raw: str) -> ConfigChange:
    """Check ``raw`` for ``key`` and write it to the file at ``path`` (see :func:`set_value`)."""
    return ConfigChange(key=key, value=set_value(path, key, raw), path=path)


def unset_setting(path: Path, key: str) -> ConfigRemoval:
    """Remove ``key`` from the file at ``path`` so its default applies."""
    return ConfigRemoval(key=key, removed=unset_value(path, key), path=path)


def config_location(path: Path) -> ConfigLocation:
    return ConfigLocation(path=path, exists=path.exists())
