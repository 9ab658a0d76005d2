"""Our UnixFS importer and CAR files against the real Kubo binary (v0.39.0).

Kubo runs offline on a temporary repo (``ipfs init --profile=test``; ``add``, ``cat``,
``get`` and ``dag import/export`` need no daemon). Every file and tree is added with
``ipfs add --cid-version=1`` and must get the CID our importer computes; CARs go both
ways: ours into ``ipfs dag import``, Kubo's ``ipfs dag export`` into ``read_car``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahara_cli.vault import car, unixfs
from sahara_cli.vault.cid import CID
from tests.vault_kubo import IPFS_BIN as IPFS_FOUND

pytestmark = pytest.mark.e2e

# Read at import: the root conftest's autouse fixture clears SAHARA_* for each test.
IPFS_BIN = IPFS_FOUND or ""

C = 262144
MIB = 1 << 20


@dataclass
class Kubo:
    repo: Path

    def __call__(self, *args: str, check: bool = True) -> bytes:
        env = {**os.environ, "IPFS_PATH": str(self.repo)}
        done = subprocess.run(
            [IPFS_BIN, *args], env=env, capture_output=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"ipfs {' '.join(args)} failed: {done.stderr.decode().strip()}")
        return done.stdout

    def add(self, path: Path, *options: str) -> str:
        return self("add", "-Q", "--cid-version=1", *options, str(path)).decode().strip()


def _new_repo(path: Path) -> Kubo:
    if not IPFS_BIN:
        pytest.fail(
            "Kubo was not found (SAHARA_IPFS_BIN, the cache, PATH): run 'sahara setup kubo', "
            "run the tests through scripts/test, or export SAHARA_IPFS_BIN=/path/to/ipfs",
            pytrace=False,
        )
    if not Path(IPFS_BIN).is_file():
        pytest.fail(f"{IPFS_BIN} is not a file", pytrace=False)
    kubo = Kubo(path)
    kubo("init", "--profile=test", "--empty-repo")
    return kubo


@pytest.fixture(scope="module")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Kubo:
    return _new_repo(tmp_path_factory.mktemp("ipfs-repo"))


@pytest.fixture(scope="module")
def fresh_kubo(tmp_path_factory: pytest.TempPathFactory) -> Kubo:
    """A second repo that holds nothing but what CAR imports bring."""
    return _new_repo(tmp_path_factory.mktemp("ipfs-import"))


def rand(size: int, seed: str) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def pattern(size: int, unit: bytes) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


FOUR_K = rand(4096, "pattern")

# name, size, generator. Repetitive files repeat a 4 KiB unit, so their 256 KiB chunks
# are identical and dedupe; the 7-byte pattern gives chunks that differ.
FILES: list[tuple[str, int, Callable[[int], bytes]]] = [
    ("empty", 0, lambda n: b""),
    ("one-byte", 1, lambda n: b"\x00"),
    ("small", 1000, lambda n: rand(n, "small")),
    ("chunk-minus-1", C - 1, lambda n: rand(n, "c-1")),
    ("chunk", C, lambda n: rand(n, "c")),
    ("chunk-plus-1", C + 1, lambda n: rand(n, "c+1")),
    ("two-chunks", 2 * C, lambda n: rand(n, "2c")),
    ("odd-size", 3 * C + 12345, lambda n: rand(n, "odd")),
    ("10-mib", 10 * MIB, lambda n: rand(n, "10m")),
    ("174-chunks", 174 * C, lambda n: rand(n, "174")),
    ("174-chunks-plus-1", 174 * C + 1, lambda n: rand(n, "174+1")),
    ("175-chunks", 175 * C, lambda n: rand(n, "175")),
    ("50-mib", 50 * MIB, lambda n: rand(n, "50m")),
    ("rep-one-byte", 1, lambda n: FOUR_K[:n]),
    ("rep-chunk-plus-1", C + 1, lambda n: pattern(n, FOUR_K)),
    ("rep-10-mib", 10 * MIB, lambda n: pattern(n, FOUR_K)),
    ("rep-174-chunks-minus-1", 174 * C - 1, lambda n: pattern(n, FOUR_K)),
    ("rep-175-chunks-plus-1", 175 * C + 1, lambda n: pattern(n, FOUR_K)),
    ("zeros", 2 * C + 5, bytes),
    ("rep-7-bytes", MIB + 3, lambda n: pattern(n, b"sahara\n")),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    out = {}
    for name, size, make in FILES:
        path = folder / name
        path.write_bytes(make(size))
        out[name] = path
    return out


class Blocks(dict[CID, bytes]):
    def put(self, cid: CID, block: bytes) -> None:
        self[cid] = block

    def read(self, cid: CID) -> bytes:
        return self[cid]


@pytest.mark.parametrize("name", [name for name, _, _ in FILES])
def test_file_cid_equals_kubo(kubo: Kubo, files: dict[str, Path], name: str) -> None:
    path = files[name]
    ours = unixfs.import_file(path, Blocks().put)
    assert ours.size == path.stat().st_size
    assert ours.cid.encode() == kubo.add(path)


def test_deep_trees_equal_kubo_with_small_chunks(kubo: Kubo, tmp_path: Path) -> None:
    """16-byte chunks and 3 links per node reach height 5 with a few KiB."""
    for size in (0, 16, 17, 48, 49, 144, 145, 432, 433, 1296, 1297, 4000):
        path = tmp_path / f"deep-{size}"
        path.write_bytes(rand(size, f"deep{size}"))
        ours = unixfs.import_file(path, Blocks().put, chunk_size=16, max_links=3)
        theirs = kubo.add(path, "--only-hash", "--chunker=size-16", "--max-file-links=3")
        assert ours.cid.encode() == theirs, size


def make_nested(root: Path) -> Path:
    (root / "models" / "v1").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "data" / "deep" / "deeper").mkdir(parents=True)
    (root / "README.md").write_text("# nested\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "models" / "v1" / "weights.bin").write_bytes(rand(3 * C + 17, "weights"))
    (root / "models" / "v1" / "config.json").write_text('{"layers": 12}\n')
    (root / "models" / "Z-upper").write_bytes(b"Z")
    (root / "data" / "deep" / "deeper" / "one.txt").write_bytes(b"1")
    (root / "data" / "r\u00e9sum\u00e9 \u2603.txt").write_bytes(b"unicode name")
    (root / "data" / "chunk").write_bytes(pattern(C, FOUR_K))
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / "models" / ".git").mkdir()
    (root / "models" / ".git" / "HEAD").write_bytes(b"ref: main\n")
    (root / "latest").symlink_to("models/v1")
    return root


def make_flat(root: Path) -> Path:
    root.mkdir()
    for i in range(60):
        (root / f"file-{i:03d}.txt").write_bytes(rand(i * 97, f"flat{i}"))
    return root


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trees")
    return {
        "nested": make_nested(folder / "nested"),
        "flat": make_flat(folder / "flat"),
    }


@pytest.mark.parametrize(("tree", "hidden"), [("nested", False), ("nested", True), ("flat", False)])
def test_directory_cid_equals_kubo(
    kubo: Kubo, trees: dict[str, Path], tree: str, hidden: bool
) -> None:
    ours = unixfs.import_directory(trees[tree], Blocks().put, hidden=hidden)
    theirs = kubo.add(trees[tree], "-r", *(["--hidden"] if hidden else []))
    assert ours.cid.encode() == theirs


def test_hamt_directory_equals_kubo(kubo: Kubo, tmp_path: Path) -> None:
    """Past 256 KiB of (name + CID) bytes Kubo shards the directory; so do we."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2100):
        (root / f"entry-{i:05d}-{'x' * 80}").write_bytes(str(i % 11).encode())
    blocks = Blocks()
    ours = unixfs.import_directory(root, blocks.put)
    assert ours.cid.encode() == kubo.add(root, "-r")
    assert len(unixfs.ls(ours.cid, blocks.read)) == 2100
    out = io.BytesIO()
    car.export_dag(out, [ours.cid], blocks.read)
    assert out.getvalue() == kubo("dag", "export", ours.cid.encode())


def _import_stats(kubo: Kubo, car_path: Path) -> tuple[list[str], int]:
    lines = kubo("dag", "import", "--stats", "--enc=json", str(car_path)).decode().splitlines()
    roots: list[str] = []
    count = -1
    for line in lines:
        doc = json.loads(line)
        if doc.get("Root"):
            assert not doc["Root"].get("PinErrorMsg"), doc
            roots.append(doc["Root"]["Cid"]["/"])
        if doc.get("Stats"):
            count = doc["Stats"]["BlockCount"]
    return roots, count


def test_our_file_car_imports_into_kubo(
    kubo: Kubo, fresh_kubo: Kubo, files: dict[str, Path], tmp_path: Path
) -> None:
    path = files["175-chunks"]
    blocks = Blocks()
    ours = unixfs.import_file(path, blocks.put)
    car_path = tmp_path / "file.car"
    with car_path.open("wb") as fh:
        car.export_dag(fh, [ours.cid], blocks.read)
    # Byte for byte what Kubo exports for the same DAG.
    kubo.add(path)
    assert car_path.read_bytes() == kubo("dag", "export", ours.cid.encode())
    roots, count = _import_stats(fresh_kubo, car_path)
    assert roots == [ours.cid.encode()]
    assert count == len(blocks)
    assert fresh_kubo("cat", ours.cid.encode()) == path.read_bytes()


def test_our_directory_car_imports_into_kubo(
    kubo: Kubo, fresh_kubo: Kubo, trees: dict[str, Path], tmp_path: Path
) -> None:
    blocks = Blocks()
    ours = unixfs.import_directory(trees["nested"], blocks.put)
    car_path = tmp_path / "dir.car"
    with car_path.open("wb") as fh:
        car.export_dag(fh, [ours.cid], blocks.read)
    theirs = kubo.add(trees["nested"], "-r")
    assert car_path.read_bytes() == kubo("dag", "export", theirs)
    roots, _ = _import_stats(fresh_kubo, car_path)
    assert roots == [ours.cid.encode()]
    got = tmp_path / "got"
    fresh_kubo("get", "-o", str(got), ours.cid.encode())
    mine = tmp_path / "mine"
    unixfs.export_to_path(ours.cid, blocks.read, mine)
    assert _snapshot(got) == _snapshot(mine)
    assert (got / "latest").readlink() == Path("models/v1")
    assert (got / "models" / "v1" / "weights.bin").read_bytes() == rand(3 * C + 17, "weights")
    assert not (got / ".env").exists()


def _snapshot(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", str(path.readlink()))
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("name", ["50-mib", "rep-175-chunks-plus-1", "chunk", "empty"])
def test_kubo_car_reads_back(kubo: Kubo, files: dict[str, Path], name: str) -> None:
    path = files[name]
    cid = kubo.add(path)
    exported = kubo("dag", "export", cid)
    roots, sections = car.read_car(io.BytesIO(exported))
    assert [r.encode() for r in roots] == [cid]
    blocks = dict(sections)
    digest = hashlib.sha256()
    size = 0
    for piece in unixfs.iter_file(roots[0], blocks.__getitem__):
        digest.update(piece)
        size += len(piece)
    assert size == path.stat().st_size
    assert digest.digest() == hashlib.sha256(path.read_bytes()).digest()
