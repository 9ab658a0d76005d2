"""The model store and the checks done before a model is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sahara_cli.agent.runners import model_store as models
from sahara_cli.agent.runners.base import RunnerOptions, open_runner
from sahara_cli.agent.runners.model_store import ModelStore, check_gguf
from sahara_cli.errors import (
    ModelDownloadFailed,
    ModelExists,
    ModelInvalid,
    ModelNotFound,
    ModelTooLarge,
)
from sahara_cli.vault import unixfs

pytest_plugins = ("tests.agent_models",)  # the tiny_gguf and tiny_hf fixtures


def vault_cid(path: Path) -> str:
    """The CID the vault's importer gives (blocks kept in a dict, as a blockstore would)."""
    blocks: dict[object, bytes] = {}
    if path.is_dir():
        return str(unixfs.import_directory(path, blocks.__setitem__).cid)
    return str(unixfs.import_file(path, blocks.__setitem__).cid)


def test_add_list_default_resolve_and_remove(
    tmp_path: Path, tiny_gguf: Path, tiny_hf: Path
) -> None:
    store = ModelStore(tmp_path)
    seen: list[int] = []
    first = store.add(tiny_gguf, name="tiny", progress=seen.append)
    assert sum(seen) == tiny_gguf.stat().st_size
    assert first.runner == "llama" and first.path.is_file() and first.path != tiny_gguf
    assert first.cid == vault_cid(tiny_gguf)
    assert first.cid.startswith("bafy")  # larger than one chunk: a dag-pb root
    assert store.default == "tiny"  # the first model added becomes the default
    second = store.add(tiny_hf, link=True)
    assert second.runner == "torch" and second.path == tiny_hf.resolve()
    assert second.cid == vault_cid(tiny_hf)
    assert [m.name for m in store.list()] == ["tiny", "tiny-hf"]
    assert store.resolve("default").name == "tiny"
    assert store.resolve("tiny-hf").path == tiny_hf.resolve()
    assert store.resolve(str(tiny_hf)).name == "tiny-hf"  # a stored model by its path
    outside = store.resolve(str(tmp_path / "models" / "tiny" / "tiny.gguf"))
    assert outside.name == "tiny"
    store.set_default("tiny-hf")
    assert store.get("default").name == "tiny-hf"
    with pytest.raises(ModelExists):
        store.add(tiny_gguf, name="tiny")
    store.set_asset("tiny", 7)
    assert store.get("tiny").asset_id == 7
    registry = json.loads((tmp_path / "models" / "models.json").read_text())
    assert registry["default"] == "tiny-hf" and registry["models"]["tiny"]["asset_id"] == 7
    removed = store.remove("tiny")
    assert not removed.path.exists()  # a copied model's files go with it
    store.remove("tiny-hf")
    assert tiny_hf.is_dir()  # a linked model's files stay
    assert store.list() == [] and store.default is None


def test_a_path_outside_the_store_resolves_and_loads(tmp_path: Path, tiny_gguf: Path) -> None:
    entry = ModelStore(tmp_path).resolve(str(tiny_gguf))
    assert entry.runner == "llama" and entry.facts["architecture"] == "llama"
    with open_runner(entry.runner, entry.path, RunnerOptions(n_ctx=256)) as runner:
        assert runner.count_tokens("hello") > 0


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        ModelStore(tmp_path).add(tmp_path / "nope.gguf")
    with pytest.raises(ModelNotFound):
        ModelStore(tmp_path).resolve("nope")
    with pytest.raises(ModelNotFound):
        ModelStore(tmp_path).resolve("default")
    with pytest.raises(ModelNotFound):
        open_runner("llama", tmp_path / "nope.gguf")


@pytest.mark.parametrize("damage", ["not_gguf", "truncated", "header_only", "bad_header"])
def test_corrupt_gguf_is_refused_before_llama_cpp(
    tmp_path: Path, tiny_gguf: Path, damage: str
) -> None:
    data = tiny_gguf.read_bytes()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(
        {
            "not_gguf": b"PK\x03\x04" + data[4:],
            "truncated": data[: len(data) * 2 // 3],
            "header_only": data[:2000],
            "bad_header": data[:8] + b"\xff" * 64 + data[72:],
        }[damage]
    )
    with pytest.raises(ModelInvalid):
        check_gguf(broken)
    with pytest.raises(ModelInvalid):
        open_runner("llama", broken)
    with pytest.raises(ModelInvalid):
        ModelStore(tmp_path / "home").add(broken)
    assert not (tmp_path / "home" / "models" / "models.json").exists()


def test_broken_transformers_dir(tmp_path: Path, tiny_hf: Path) -> None:
    copy = tmp_path / "hf"
    shutil.copytree(tiny_hf, copy)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ModelInvalid):
        open_runner("torch", copy)
    with pytest.raises(ModelInvalid):
        ModelStore(tmp_path).add(tmp_path)  # a directory without config.json


def test_model_too_large_for_memory(
    tmp_path: Path, tiny_gguf: Path, tiny_hf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runners read MemAvailable through models.memory_available(); pretend this
    # machine has 1 MiB free, less than the tiny models and their KV cache need.
    monkeypatch.setattr(models, "memory_available", lambda: 1 << 20)
    with pytest.raises(ModelTooLarge) as info:
        open_runner("llama", tiny_gguf, RunnerOptions(n_ctx=2048))
    assert info.value.details["need_bytes"] > info.value.details["available_bytes"]
    with pytest.raises(ModelTooLarge):
        open_runner("torch", tiny_hf)


def test_kv_cache_counts_toward_the_memory_needed(tiny_gguf: Path) -> None:
    info = check_gguf(tiny_gguf)
    assert (info.layers, info.embedding, info.kv_heads, info.head_dim) == (2, 64, 2, 16)
    assert info.kv_bytes(4096) == 2 * info.kv_bytes(2048) > 0
    assert info.chat_template and "<|im_start|>" in info.chat_template


def test_pull_offline_fails_with_the_manual_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelDownloadFailed) as info:
        ModelStore(tmp_path).pull("someone/tiny-model-GGUF", "tiny.Q4_K_M.gguf")
    assert "https://huggingface.co/someone/tiny-model-GGUF" in (info.value.hint or "")
    assert "sahara model add PATH" in (info.value.hint or "")
    assert ModelStore(tmp_path).list() == []
