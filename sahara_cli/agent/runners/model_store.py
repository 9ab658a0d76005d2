"""The model store: GGUF files and transformers checkpoints under ``<home>/models/``.

``models.json`` (written atomically) is the registry: one entry per model with its
name, path, runner, size, SHA-256 and content id (the CIDv1 that
``ipfs add --cid-version 1 --raw-leaves`` prints for it, computed with the vault's
UnixFS importer without storing any block), and the asset id once it is registered on
chain. Models can be copied in (``add``), linked in place (``add(link=True)``) or
downloaded from the Hugging Face hub (``pull``).

The checks every runner does before loading a model live here too:
:func:`check_gguf` (magic, header, tensors inside the file: llama.cpp itself may abort
the process on a broken file), :func:`check_transformers` and :func:`check_fits`
(the model and its KV cache against ``MemAvailable``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sahara_cli.errors import (
    AgentError,
    ModelDownloadFailed,
    ModelExists,
    ModelHashMismatch,
    ModelInvalid,
    ModelNotFound,
    ModelTooLarge,
    UsageError,
)
from sahara_cli.fsutil import atomic_write
from sahara_cli.units import human_size
from sahara_cli.vault.reporting import SILENT, Reporter

Progress = Callable[[int], None]

GGUF_MAGIC = b"GGUF"
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REGISTRY = "models.json"
#: Names of the store's own files, which no model may take (nor a name starting with '.').
RESERVED_NAMES = frozenset({"default", REGISTRY, "path-ids.json"})
#: Memory llama.cpp needs beyond weights and KV cache (compute buffers, scratch).
OVERHEAD_BYTES = 64 * 1024 * 1024


# -- checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says, enough to size the model before loading it."""

    path: Path
    size: int
    architecture: str
    name: str | None
    context_length: int | None
    layers: int
    embedding: int
    kv_heads: int
    head_dim: int
    tensors: int
    chat_template: str | None

    def kv_bytes(self, n_ctx: int) -> int:
        """Bytes of an f16 KV cache for ``n_ctx`` tokens."""
        return 2 * self.layers * n_ctx * self.kv_heads * self.head_dim * 2


def _field(reader: Any, key: str) -> Any:
    field_ = reader.fields.get(key)
    if field_ is None:
        return None
    with contextlib.suppress(Exception):
        return field_.contents()
    return None


def check_gguf(path: Path) -> GGUFInfo:
    """Parse ``path`` as GGUF and check that every tensor lies inside the file.

    Raises :class:`ModelNotFound` for a missing file and :class:`ModelInvalid` for
    anything that is not a complete GGUF.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelInvalid(f"{path} is not a file", hint="A GGUF model is a single .gguf file.")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelInvalid(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelInvalid(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')",
            hint="llama.cpp loads .gguf files; convert other formats with llama.cpp's tools.",
        )
    stat = path.stat()
    size = stat.st_size
    key = (str(path.resolve()), size, stat.st_mtime_ns)
    if key in _CHECKED:  # the store's check and the runner's, in one process
        return _CHECKED[key]
    try:
        metadata, tensors = _read_gguf(path)
        end = max((t.data_offset + int(t.n_bytes) for t in tensors), default=0)
    except Exception as exc:  # the readers raise ValueError, IndexError, struct errors...
        raise ModelInvalid(
            f"{path} is a damaged or truncated GGUF file: {exc}",
            hint="Download or copy the file again.",
        ) from exc
    if end > size or not tensors:
        raise ModelInvalid(
            f"{path} is truncated: its tensors need {end} bytes, the file has {size}",
            hint="Download or copy the file again.",
        )
    arch = str(metadata.get("general.architecture") or "")
    if not arch:
        raise ModelInvalid(f"{path} has no general.architecture: not a model GGUF")

    def num(key: str, default: int = 0) -> int:
        value = metadata.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values: size by the largest
            value = max(value) if value else default
        return int(value) if isinstance(value, (int, float)) else default

    embedding = num("embedding_length")
    heads = num("attention.head_count", 1) or 1
    head_dim = num("attention.key_length") or (embedding // heads if heads else 0)
    template = metadata.get("tokenizer.chat_template")
    name = metadata.get("general.name")
    info = GGUFInfo(
        path=path,
        size=size,
        architecture=arch,
        name=str(name) if name else None,
        context_length=num("context_length") or None,
        layers=num("block_count"),
        embedding=embedding,
        kv_heads=num("attention.head_count_kv", heads) or heads,
        head_dim=head_dim,
        tensors=len(tensors),
        chat_template=str(template) if template else None,
    )
    _CHECKED[key] = info
    return info


#: GGUF files already checked in this process, by path, size and modification time.
_CHECKED: dict[tuple[str, int, int], GGUFInfo] = {}


def _read_gguf(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The metadata and tensors of a GGUF: our one-pass reader, or, for a file it does
    not know, the ``gguf`` package's."""
    from sahara_cli.agent.runners.gguf_header import Unsupported, read_header

    try:
        header = read_header(path)
        return header.metadata, header.tensors
    except Unsupported:
        import gguf

        reader = gguf.GGUFReader(str(path))
        metadata = {key: _field(reader, key) for key in reader.fields}
        return metadata, list(reader.tensors)


def check_transformers(path: Path) -> dict[str, Any]:
    """Check a transformers checkpoint directory; returns its ``config.json``."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"model directory {path} does not exist")
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.is_file():
        raise ModelInvalid(
            f"{path} is not a transformers checkpoint (no config.json)",
            hint="Give the directory that save_pretrained() wrote.",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelInvalid(f"{config_file} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelInvalid(f"{config_file} has no model_type: not a transformers config")
    weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
    if not weights:
        raise ModelInvalid(f"{path} holds no weights (*.safetensors or *.bin)")
    return config


def memory_available() -> int | None:
    """Bytes of memory available to a new process (``MemAvailable`` of
    ``/proc/meminfo``), or None where the system does not say."""
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(need: int, what: str) -> None:
    """Raise :class:`ModelTooLarge` when ``need`` bytes exceed the memory available."""
    available = memory_available()
    if available is not None and need > available:
        raise ModelTooLarge(
            f"{what} needs about {human_size(need)} of memory; "
            f"{human_size(available)} is available",
            details={"need_bytes": need, "available_bytes": available},
        )


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def detect_runner(path: Path) -> str:
    """``llama`` for a GGUF file, ``torch`` for a directory with a config.json."""
    if path.is_dir():
        if (path / "config.json").is_file():
            return "torch"
        raise ModelInvalid(
            f"{path} is a directory without config.json",
            hint="Give a .gguf file, or a directory written by save_pretrained().",
        )
    return "llama"


def validate(path: Path, runner: str) -> dict[str, Any]:
    """Check the model for ``runner``; returns facts for the registry."""
    if runner == "llama":
        info = check_gguf(path)
        return {
            "architecture": info.architecture,
            "title": info.name,
            "context_length": info.context_length,
            "chat_template": info.chat_template is not None,
        }
    if runner == "torch":
        config = check_transformers(path)
        return {
            "architecture": str(config.get("model_type")),
            "title": config.get("_name_or_path") or None,
            "context_length": config.get("max_position_embeddings"),
            "chat_template": _has_chat_template(path),
        }
    raise UsageError(f"unknown runner {runner!r}: use llama or torch")


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file():
        return True
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        return bool(config.get("chat_template"))
    return False


# -- content ids --------------------------------------------------------------------------


def content_ids(path: Path, progress: Progress | None = None) -> tuple[str, str]:
    """SHA-256 and UnixFS CIDv1 of a file or directory, in one pass over the bytes.

    The CID is what ``ipfs add --cid-version 1 --raw-leaves`` (``-r`` for a directory)
    prints; no block is stored. A directory's SHA-256 is that of its ``sha256sum``-style
    manifest (``<hex>  <relative path>`` lines, sorted by path).
    """
    from sahara_cli.vault import unixfs

    def discard(_cid: Any, _data: bytes) -> None:
        return None

    if path.is_file():
        digest = hashlib.sha256()
        importer = unixfs.FileImporter(discard)
        for chunk in _read(path):
            digest.update(chunk)
            importer.write(chunk)
            if progress is not None:
                progress(len(chunk))
        return digest.hexdigest(), str(importer.finish().cid)
    lines = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        for chunk in _read(file):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
        lines.append(f"{digest.hexdigest()}  {file.relative_to(path).as_posix()}\n")
    manifest = hashlib.sha256("".join(lines).encode()).hexdigest()
    return manifest, str(unixfs.import_directory(path, discard).cid)


def git_blob_id(path: Path) -> str:
    """The git blob id (SHA-1 of ``blob <size>\\0`` and the bytes) a hub gives small files."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    for chunk in _read(path):
        digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


# -- the store ----------------------------------------------------------------------------


@dataclass
class ModelEntry:
    """One model in the store."""

    name: str
    path: Path
    runner: str
    size: int
    sha256: str
    cid: str
    linked: bool = False
    source: str | None = None  # "hf:REPO/FILE@REVISION" for pulled models
    added_at: float = 0.0
    asset_id: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        return cls(**{**data, "path": Path(data["path"])})


class ModelStore:
    """Models under ``<home>/models/`` with a JSON registry."""

    def __init__(self, home_root: Path) -> None:
        self.root = Path(home_root) / "models"
        self.registry = self.root / REGISTRY

    # -- registry --------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.registry.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"default": None, "models": {}}
        except (OSError, ValueError) as exc:
            raise ModelInvalid(
                f"the model registry {self.registry} cannot be read: {exc}",
                hint="Fix or remove the file; models themselves are not touched.",
            ) from exc
        data.setdefault("default", None)
        data.setdefault("models", {})
        return data  # type: ignore[no-any-return]

    def _save(self, data: dict[str, Any]) -> None:
        atomic_write(self.registry, (json.dumps(data, indent=2) + "\n").encode(), mode=0o644)

    def list(self) -> list[ModelEntry]:
        return [ModelEntry.from_dict(m) for m in self._load()["models"].values()]

    def get(self, name: str) -> ModelEntry:
        data = self._load()
        if name == "default":
            if not data["default"]:
                raise ModelNotFound("no default model is set")
            name = data["default"]
        entry = data["models"].get(name)
        if entry is None:
            raise ModelNotFound(f"no model named '{name}' in the store")
        return ModelEntry.from_dict(entry)

    @property
    def default(self) -> str | None:
        value = self._load()["default"]
        return str(value) if value else None

    def set_default(self, name: str) -> ModelEntry:
        data = self._load()
        if name not in data["models"]:
            raise ModelNotFound(f"no model named '{name}' in the store")
        data["default"] = name
        self._save(data)
        return ModelEntry.from_dict(data["models"][name])

    def set_asset(self, name: str, asset_id: int) -> ModelEntry:
        data = self._load()
        if name not in data["models"]:
            raise ModelNotFound(f"no model named '{name}' in the store")
        data["models"][name]["asset_id"] = asset_id
        self._save(data)
        return ModelEntry.from_dict(data["models"][name])

    def resolve(self, name_or_path: str | Path) -> ModelEntry:
        """An entry for ``default``, a store name, or a model file / directory path
        (a path outside the store gets an unsaved entry without content ids)."""
        text = str(name_or_path)
        if isinstance(name_or_path, str) and (text == "default" or NAME_RE.match(text)):
            data = self._load()
            key = data["default"] if text == "default" else text
            if key and key in data["models"]:
                return ModelEntry.from_dict(data["models"][key])
            if text == "default":
                raise ModelNotFound(
                    "no default model is set",
                    hint="Add one with 'sahara model add PATH' or 'sahara model pull REPO FILE'.",
                )
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise ModelNotFound(f"'{text}' is neither a model in the store nor a path")
        for entry in self.list():
            if entry.path.resolve() == path.resolve():
                return entry
        runner = detect_runner(path)
        facts = validate(path, runner)
        sha256, cid = self._path_ids(path)
        return ModelEntry(path.stem, path, runner, tree_bytes(path), sha256, cid, True, facts=facts)

    def _path_ids(self, path: Path) -> tuple[str, str]:
        """Content ids of a model outside the store, cached by path, size and mtime, so
        every answer's record names its model without hashing it again."""
        cache = self.root / "path-ids.json"
        stat = path.stat()
        key = f"{path.resolve()}|{tree_bytes(path)}|{stat.st_mtime_ns}"
        try:
            known: dict[str, list[str]] = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            sha256, cid = known[key]
            return sha256, cid
        sha256, cid = content_ids(path)
        known = {k: v for k, v in known.items() if not k.startswith(f"{path.resolve()}|")}
        known[key] = [sha256, cid]
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, (json.dumps(known, indent=1) + "\n").encode(), mode=0o644)
        return sha256, cid

    # -- adding and removing ---------------------------------------------------------

    def add(
        self,
        path: Path,
        *,
        name: str | None = None,
        runner: str | None = None,
        link: bool = False,
        progress: Progress | None = None,
        source: str | None = None,
        expected_sha256: str | None = None,
    ) -> ModelEntry:
        """Validate a model, hash it, and copy (or link) it into the store.

        With ``expected_sha256`` a file whose SHA-256 differs is refused before anything
        is copied or recorded.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise ModelNotFound(f"{path} does not exist")
        runner = runner or detect_runner(path)
        name = name or (path.stem if path.is_file() else path.name)
        if not NAME_RE.match(name) or name in RESERVED_NAMES:
            raise UsageError(
                f"{name!r} is not a usable model name",
                hint="Use letters, digits, '.', '_' and '-' (and not 'default', "
                f"{REGISTRY} or path-ids.json); pass --name.",
            )
        facts = validate(path, runner)
        if name in self._load()["models"]:
            raise ModelExists(f"a model named '{name}' is in the store already")
        sha256, cid = content_ids(path, progress)
        if expected_sha256 is not None and sha256 != expected_sha256.lower():
            raise ModelHashMismatch(
                f"{path.name} has SHA-256 {sha256}, not the expected {expected_sha256.lower()}"
            )
        target = path.resolve()
        if not link:
            target = self.root / name / path.name
            if target.resolve() != path.resolve():
                self._copy_in(path, target)
        entry = ModelEntry(
            name=name,
            path=target,
            runner=runner,
            size=tree_bytes(target),
            sha256=sha256,
            cid=cid,
            linked=link,
            source=source,
            added_at=time.time(),
            facts=facts,
        )
        data = self._load()
        if name in data["models"]:  # added meanwhile by another process
            raise ModelExists(f"a model named '{name}' is in the store already")
        data["models"][name] = entry.to_dict()
        if not data["default"]:
            data["default"] = name
        self._save(data)
        return entry

    def _copy_in(self, path: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        try:
            if path.is_dir():
                shutil.copytree(path, partial)
            else:
                shutil.copyfile(path, partial)
            partial.replace(target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
            raise AgentError(
                f"cannot copy {path} into the model store: {exc.strerror or exc}",
                hint="Free some disk space, or add it with --link to keep it where it is.",
            ) from exc

    def remove(self, name: str) -> ModelEntry:
        """Drop a model from the registry; a copied model's files are deleted too."""
        data = self._load()
        if name not in data["models"]:
            raise ModelNotFound(f"no model named '{name}' in the store")
        entry = ModelEntry.from_dict(data["models"].pop(name))
        if data["default"] == name:
            data["default"] = next(iter(data["models"]), None)
        self._save(data)
        if not entry.linked:
            folder = self.root / name
            if folder.is_dir() and self.root in folder.resolve().parents:
                shutil.rmtree(folder, ignore_errors=True)
        return entry

    def pull(
        self,
        repo: str,
        filename: str,
        *,
        revision: str | None = None,
        name: str | None = None,
        sha256: str | None = None,
        endpoint: str | None = None,
        progress: Progress | None = None,
        report: Reporter = SILENT,
    ) -> ModelEntry:
        """Download ``filename`` of the Hugging Face repo ``repo`` and add it.

        ``report`` shows the download and the check of the file as byte counts (the
        hub's own progress bar is never drawn); ``progress`` counts the bytes checked.

        The revision (a branch, tag or commit; ``main`` by default) is resolved to its
        commit first, and the file is downloaded at that commit, so a branch that moves
        during the download cannot mix two versions; the entry's source names the commit.
        The file's SHA-256 must equal ``sha256`` when given, and the hub's own record of
        it (the LFS object id, or the git blob id of a small file) always: a file that
        differs is deleted and nothing is added.
        """
        manual = (
            f"Download {filename} from https://huggingface.co/{repo} by hand, then run "
            "'sahara model add PATH'."
        )
        if sha256 is not None and not SHA256_RE.match(sha256):
            raise UsageError(f"--sha256 {sha256!r} is not 64 hexadecimal digits")
        try:
            from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
        except ImportError as exc:
            raise ModelDownloadFailed("huggingface_hub is not installed", hint=manual) from exc
        endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None

        def failed(exc: Exception) -> ModelDownloadFailed:
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else type(exc).__name__
            return ModelDownloadFailed(
                f"cannot download {filename} from {repo}: {reason[:300]}", hint=manual
            )

        try:
            url = hf_hub_url(repo, filename, revision=revision or "main", endpoint=endpoint)
            with report.status(f"Asking the hub for {filename}"):
                meta = get_hf_file_metadata(url, endpoint=endpoint)
        except Exception as exc:  # offline, DNS, HTTP 404, auth: all a failed download
            raise failed(exc) from exc
        commit = (meta.commit_hash or "").lower()
        if not COMMIT_RE.match(commit):
            raise ModelDownloadFailed(
                f"the hub named no commit for {repo}@{revision or 'main'}", hint=manual
            )
        etag = (meta.etag or "").lower()
        if sha256 is not None and SHA256_RE.match(etag) and etag != sha256.lower():
            raise ModelHashMismatch(
                f"{repo}@{commit[:12]} has {filename} with SHA-256 {etag}, "
                f"not the expected {sha256.lower()}"
            )
        expected = sha256 or (etag if SHA256_RE.match(etag) else None)
        blob_id = etag if expected is None and COMMIT_RE.match(etag) else None
        if expected is None and blob_id is None:
            raise ModelDownloadFailed(
                f"the hub gave no content hash for {filename} in {repo}@{commit[:12]}",
                hint="Pass the file's SHA-256 with --sha256. " + manual,
            )
        downloads = self.root / ".downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        try:
            local = hf_hub_download(
                repo_id=repo,
                filename=filename,
                revision=commit,
                local_dir=downloads,
                endpoint=endpoint,
                tqdm_class=_reporting_tqdm(report, f"Downloading {filename}"),
            )
        except Exception as exc:
            raise failed(exc) from exc
        path = Path(str(local))
        try:
            if blob_id is not None and git_blob_id(path) != blob_id:
                raise ModelHashMismatch(
                    f"{filename} from {repo}@{commit[:12]} is not the file the hub names "
                    f"(git blob {blob_id})"
                )
            with report.progress("Checking", path.stat().st_size) as checked:

                def advance(n: int) -> None:
                    checked(n)
                    if progress is not None:
                        progress(n)

                return self.add(
                    path,
                    name=name,
                    progress=advance,
                    source=f"hf:{repo}/{filename}@{commit}",
                    expected_sha256=expected,
                )
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


def _reporting_tqdm(report: Reporter, description: str) -> Any:
    """A tqdm class for ``hf_hub_download`` that draws nothing and counts into ``report``."""
    from huggingface_hub.utils.tqdm import tqdm as hub_tqdm

    class ReportingTqdm(hub_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # the hub's own bar would write to stderr even for --json
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            total = kwargs.get("total")
            self._shown: Any = report.progress(description, int(total) if total else None)
            self._advance = self._shown.__enter__()
            if kwargs.get("initial"):
                self._advance(int(kwargs["initial"]))

        def update(self, n: float | None = 1) -> bool | None:
            if n:
                self._advance(int(n))
            return None

        def close(self) -> None:
            shown, self._shown = getattr(self, "_shown", None), None
            if shown is not None:
                shown.__exit__(None, None, None)
            super().close()

    return ReportingTqdm
