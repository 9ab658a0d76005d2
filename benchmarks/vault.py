"""Vault search: indexing throughput and query latency, against bare Chroma + sentence-transformers.

    python benchmarks/vault.py [--chunks N] [--queries N] [--k K] [--cold-runs N]
                               [--peer sentence-transformers|none] [--skip-add]
                               [--skip-search] [--seed S] [--json-out FILE]

The search half (this file's ``measure_search``), both sides on the same synthetic
chunks in the same run:

  corpus       N chunks (default 10,000) of 12-40 words, built deterministically from
               --seed: sentences from 24 topic vocabularies and shared filler words,
               grouped as items of 100 chunks; queries are 4-9 words of one topic
  ours         ``VaultIndex`` (sahara_cli.vault.index) with the vault's embedder
               (--embedder, default onnx: the float model on onnxruntime):
               ``add`` per item (embedding + Chroma), then ``search(query, k)``
  peer         bare Chroma (same version, cosine space) and sentence-transformers on
               torch, the same all-MiniLM-L6-v2: ``SentenceTransformer.encode`` then
               ``collection.add`` per item; per query ``encode([query])`` then
               ``collection.query``
  index        chunks/s over all items (embedding and storing); the sides take turns
               item by item
  search       per-query latency, p50 and p99 over --queries (default 200) after 10
               warm-up queries; the two sides take turns in blocks of 20 queries, each
               block's order swapped, so a slow moment of the machine hits both alike
  embed        per-query latency of the embedding alone, p50
  top-1        share of queries where both sides return the same best chunk (target
               >= 0.99): strict, since about 10% of these random-word queries have a
               top-1/top-2 cosine gap under 0.0036; 1.0 with the float embedders
               (onnx, minilm), about 0.8 with onnx-int8. "in peer top-5": share of
               queries whose best chunk of ours is among the peer's five best
  top-1, docs  the same share on real text (benchmarks/_realtext.py): README.md and
               docs/*.md chunked as the vault does, queries from their headings and
               sentences, best chunk found exactly on each side
  cold search  --cold-runs times (default 2; 0 skips) a new process that opens the
               index and runs one query, as ``sahara vault search`` does: imports,
               model load, Chroma open and the query

Targets: our indexing at least 3x the peer's chunks/s, top-1 agreement >= 0.99, our
search p50 at most 1.2x the peer's. Prints a table, then one JSON document
(``--json-out FILE`` also writes it). Exit status 0 whether or not the target is met
(timings vary between machines). ``--skip-add`` skips the add half, ``--skip-search``
this half.

The add half: a --add-mib file (256 MiB) added as a whole command, --add-runs times
(median), the sides taking turns: ``sahara vault add --public`` against Kubo's ``ipfs
add --cid-version=1`` (target >= 1.0x, and the same CID), and the encrypted ``sahara
vault add`` against one core's sha256 + AES-256-GCM over the same bytes in 256 KiB
chunks (target >= 0.5x); ``Vault.add`` in-process too, without the command's start-up.
Needs ``source scripts/_setup.sh``. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ["HF_HUB_OFFLINE"] = "1"  # the peer loads the model from a local directory only
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from _common import finish, machine, pick, say  # noqa: E402
from _realtext import CLOSE_GAP  # noqa: E402
from _realtext import agreement as real_text_agreement  # noqa: E402

from sahara_cli.vault.text import Chunk  # noqa: E402

ITEM_CHUNKS = 100
WARMUP_QUERIES = 10
BLOCK = 20
TARGET_SEARCH_RATIO = 1.2
TARGET_INDEX_RATIO = 3.0
TARGET_TOP1 = 0.99

TOPICS = {
    "astronomy": "star galaxy telescope orbit planet nebula comet eclipse light-year "
    "supernova asteroid observatory cosmic gravity moon solar spectrum",
    "cooking": "recipe oven garlic simmer flour butter sauce roast basil onion "
    "pepper dough bake skillet broth salt tomato",
    "finance": "interest loan budget equity dividend inflation bond portfolio "
    "mortgage credit tax savings market invoice revenue audit",
    "medicine": "patient diagnosis vaccine symptom dosage clinic surgeon therapy "
    "infection antibiotic nurse fever prescription blood heart",
    "gardening": "soil seed compost prune bloom tomato shovel mulch greenhouse "
    "watering root weeds harvest fertilizer seedling hedge",
    "football": "goal striker referee penalty league midfield coach stadium "
    "tackle offside keeper match season transfer fans",
    "programming": "compiler function variable debugger loop syntax repository "
    "thread memory pointer library runtime test commit refactor",
    "music": "melody guitar chord rhythm orchestra tempo concert violin lyric "
    "drums harmony piano album singer chorus",
    "travel": "passport airport luggage hotel itinerary visa train ticket beach "
    "museum tour flight border map hostel",
    "law": "contract court judge statute plaintiff appeal verdict lawyer clause "
    "liability evidence jury license copyright trial",
    "climate": "carbon emissions warming glacier drought renewable solar wind "
    "sea-level heatwave methane forest rainfall policy",
    "chemistry": "molecule reaction catalyst acid bond electron solvent titration "
    "compound isotope oxidation polymer lab crystal",
    "history": "empire dynasty treaty revolution archive monarch battle colony "
    "century manuscript ruins medieval parliament",
    "machine learning": "dataset model training gradient embedding neural "
    "transformer inference benchmark label accuracy tokenizer gpu",
    "architecture": "facade beam concrete arch blueprint column atrium brick "
    "steel skyscraper courtyard staircase roof",
    "ocean": "reef whale tide coral current plankton trench shark salinity "
    "dolphin kelp sonar harbor wave",
    "education": "student teacher curriculum exam lecture classroom homework "
    "degree tutor semester grade library campus",
    "automotive": "engine brake tire transmission fuel battery clutch sedan "
    "mileage torque exhaust dashboard gearbox",
    "photography": "lens aperture shutter exposure tripod portrait lighting "
    "focus sensor zoom darkroom landscape frame",
    "security": "password encryption firewall malware phishing key certificate "
    "breach audit token vulnerability patch login",
    "biology": "cell gene protein enzyme species evolution tissue membrane "
    "organism dna bacteria mitosis habitat",
    "energy": "grid turbine voltage reactor pipeline coal hydro storage "
    "transformer outage efficiency kilowatt meter",
    "art": "canvas brush sculpture gallery pigment sketch portrait mural easel "
    "exhibition charcoal watercolor curator",
    "agriculture": "crop tractor irrigation wheat livestock barn harvest yield "
    "pasture fertilizer orchard grain dairy",
}
FILLER = "the a of and to in is was for on with as by at from that this it be are has"
FILLER += " have which about into over under after before during many some most often"
VERBS = "describes explains shows covers needs uses improves reduces measures compares"
VERBS += " studies changes keeps follows supports records"


@dataclass(frozen=True)
class Corpus:
    items: list[tuple[str, list[Chunk]]]  # (item id, its chunks)
    queries: list[str]

    @property
    def chunk_count(self) -> int:
        return sum(len(chunks) for _, chunks in self.items)


def build_corpus(chunks: int, queries: int, seed: int) -> Corpus:
    """``chunks`` chunks of 12-40 words in items of ITEM_CHUNKS, and ``queries`` queries."""
    rng = random.Random(seed)
    vocab = {topic: words.split() for topic, words in TOPICS.items()}
    filler, verbs = FILLER.split(), VERBS.split()
    names = sorted(vocab)

    def sentence(topic: str, length: int) -> str:
        words = []
        for i in range(length):
            roll = rng.random()
            if i == 1:
                words.append(rng.choice(verbs))
            elif roll < 0.55:
                words.append(rng.choice(vocab[topic]))
            elif roll < 0.65:
                words.append(rng.choice(vocab[rng.choice(names)]))  # a stray word
            else:
                words.append(rng.choice(filler))
        return " ".join(words).capitalize() + "."

    items: list[tuple[str, list[Chunk]]] = []
    made = 0
    while made < chunks:
        item_id = f"item-{len(items):05d}"
        topic = rng.choice(names)
        offset = 0
        item_chunks = []
        for index in range(min(ITEM_CHUNKS, chunks - made)):
            if rng.random() < 0.3:
                topic = rng.choice(names)  # items drift between topics
            target = rng.randint(12, 40)
            parts = []
            left = target
            while left > 0:
                n = min(left, rng.randint(6, 16))
                if left - n < 4:
                    n = left
                parts.append(sentence(topic, n))
                left -= n
            text = " ".join(parts)
            item_chunks.append(Chunk(index=index, text=text, start=offset, end=offset + len(text)))
            offset += len(text) + 1
        items.append((item_id, item_chunks))
        made += len(item_chunks)
    query_list = []
    for _ in range(queries):
        topic = rng.choice(names)
        n = rng.randint(4, 9)
        words = [rng.choice(vocab[topic]) if rng.random() < 0.7 else rng.choice(filler)]
        words += [rng.choice(vocab[topic]) for _ in range(n - 1)]
        query_list.append(" ".join(words))
    return Corpus(items=items, queries=query_list)


# --- the two sides ------------------------------------------------------------------


class Ours:
    def __init__(self, path: Path, kind: str) -> None:
        from sahara_cli.vault.embed import get_embedder
        from sahara_cli.vault.index import VaultIndex

        get_embedder(kind, fallback=False)  # a first use builds the int8 graph: not timed
        started = time.perf_counter()
        self.embedder = get_embedder(kind, fallback=False)
        self.load_s = time.perf_counter() - started
        self.label = f"sahara VaultIndex ({self.embedder.name}, {kind})"
        self.kind = kind
        self.index = VaultIndex(path, self.embedder)

    def add(self, item_id: str, chunks: list[Chunk]) -> None:
        self.index.add(item_id, asset_id=None, cid=f"cid-{item_id}", name=item_id, chunks=chunks)

    def search(self, query: str, k: int) -> str:
        hits = self.index.search(query, k)
        return f"{hits[0].item}#{hits[0].chunk}"

    def search_ids(self, query: str, k: int) -> list[str]:
        return [f"{hit.item}#{hit.chunk}" for hit in self.index.search(query, k)]

    def embed_query(self, query: str) -> None:
        self.embedder.embed([query])

    def close(self) -> None:
        self.index.close()


class Peer:
    label = "Chroma + sentence-transformers (torch)"

    def __init__(self, path: Path) -> None:
        import chromadb
        from chromadb.config import Settings

        from sahara_cli.vault.embed import model_dir

        started = time.perf_counter()
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir()), device="cpu")
        self.load_s = time.perf_counter() - started
        self.client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False)
        )
        self.collection = self.client.get_or_create_collection(
            "peer", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )

    def encode(self, texts: list[str]) -> Any:
        return self.model.encode(
            texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )

    def add(self, item_id: str, chunks: list[Chunk]) -> None:
        vectors = self.encode([chunk.text for chunk in chunks])
        self.collection.add(
            ids=[f"{item_id}#{chunk.index}" for chunk in chunks],
            embeddings=vectors,
            metadatas=[
                {"item": item_id, "chunk": c.index, "start": c.start, "end": c.end, "text": c.text}
                for c in chunks
            ],
        )

    def search(self, query: str, k: int) -> str:
        vector = self.encode([query])
        found = self.collection.query(
            query_embeddings=vector, n_results=k, include=["metadatas", "distances"]
        )
        best = found["metadatas"][0][0]  # type: ignore[index]
        return f"{best['item']}#{best['chunk']}"

    def search_ids(self, query: str, k: int) -> list[str]:
        found = self.collection.query(
            query_embeddings=self.encode([query]), n_results=k, include=["metadatas"]
        )
        return [f"{m['item']}#{m['chunk']}" for m in found["metadatas"][0]]  # type: ignore[index]

    def embed_query(self, query: str) -> None:
        self.encode([query])

    def close(self) -> None:
        self.client.close()


# --- measurements -------------------------------------------------------------------


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(statistics.median(samples) * 1e3, 3),
        "p99_ms": round(cuts[98] * 1e3, 3),
        "mean_ms": round(statistics.fmean(samples) * 1e3, 3),
    }


def measure_index(sides: list[Ours | Peer], corpus: Corpus) -> list[dict[str, Any]]:
    """Add every item on each side, the sides taking turns item by item (order swapped
    each time), so that a busy moment of the machine slows both alike."""
    seconds = [0.0] * len(sides)
    for number, (item_id, chunks) in enumerate(corpus.items):
        order = list(range(len(sides)))
        if number % 2:
            order.reverse()
        for i in order:
            began = time.perf_counter()
            sides[i].add(item_id, chunks)
            seconds[i] += time.perf_counter() - began
    return [
        {
            "chunks": corpus.chunk_count,
            "seconds": round(elapsed, 2),
            "chunks_per_s": round(corpus.chunk_count / elapsed, 1),
        }
        for elapsed in seconds
    ]


def interleaved(
    sides: list[Ours | Peer],
    run: Callable[[Ours | Peer, str], Any],
    warmup: list[str],
    queries: list[str],
) -> list[list[float]]:
    """Time ``run(side, query)`` for every query on each side, the sides taking turns."""
    for side in sides:
        for query in warmup:
            run(side, query)
    samples: list[list[float]] = [[] for _ in sides]
    for block_no, start in enumerate(range(0, len(queries), BLOCK)):
        order = list(range(len(sides)))
        if block_no % 2:
            order.reverse()
        for i in order:
            for query in queries[start : start + BLOCK]:
                began = time.perf_counter()
                run(sides[i], query)
                samples[i].append(time.perf_counter() - began)
    return samples


def measure_cold(
    kind: str, path: Path, query: str, k: int, runs: int, kind_of_ours: str = "onnx"
) -> dict[str, Any] | None:
    """Seconds for a new process to open the index and answer one query."""
    if runs < 1:
        return None
    if kind == "ours":
        code = f"""
            from pathlib import Path
            from sahara_cli.vault.index import VaultIndex
            with VaultIndex(Path({str(path)!r}), kind={kind_of_ours!r}) as index:
                assert index.search({query!r}, {k})
        """
    else:
        code = f"""
            import os
            os.environ["HF_HUB_OFFLINE"] = "1"
            import chromadb
            from chromadb.config import Settings
            from sentence_transformers import SentenceTransformer
            from sahara_cli.vault.embed import model_dir
            model = SentenceTransformer(str(model_dir()), device="cpu")
            client = chromadb.PersistentClient(
                path={str(path)!r}, settings=Settings(anonymized_telemetry=False)
            )
            collection = client.get_collection("peer", embedding_function=None)
            vector = model.encode([{query!r}], normalize_embeddings=True)
            assert collection.query(query_embeddings=vector, n_results={k})["ids"][0]
        """
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            check=True,
            capture_output=True,
            cwd=ROOT,
            timeout=600,
        )
        times.append(time.perf_counter() - began)
    return {
        "runs": runs,
        "median_s": round(statistics.median(times), 2),
        "min_s": round(min(times), 2),
    }


def measure_search(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The search half: index the corpus on both sides, then time queries."""
    corpus = build_corpus(args.chunks, args.queries + WARMUP_QUERIES, args.seed)
    queries = corpus.queries
    say(f"corpus: {corpus.chunk_count:,} chunks in {len(corpus.items)} items")
    sides: list[Ours | Peer] = [Ours(workdir / "ours", args.embedder)]
    if args.peer == "sentence-transformers":
        say("loading sentence-transformers (imports torch)")
        sides.append(Peer(workdir / "peer"))
    result: dict[str, Any] = {"chunks": corpus.chunk_count, "queries": args.queries, "k": args.k}
    try:
        say("indexing")
        indexed = measure_index(sides, corpus)
        for side, key, index in zip(sides, ("ours", "peer"), indexed, strict=False):
            result[key] = {
                "label": side.label,
                "model_load_s": round(side.load_s, 2),
                "index": index,
            }
        say("search latency")
        warmup, timed = queries[:WARMUP_QUERIES], queries[WARMUP_QUERIES:]
        search = interleaved(sides, lambda side, q: side.search(q, args.k), warmup, timed)
        embed = interleaved(sides, lambda side, q: side.embed_query(q), warmup, timed)
        for key, s_samples, e_samples in zip(("ours", "peer"), search, embed, strict=False):
            result[key]["search"] = percentiles_ms(s_samples)
            result[key]["embed_query"] = percentiles_ms(e_samples)
        if len(sides) == 2:
            ours_ids = [sides[0].search_ids(q, 5) for q in timed]
            peer_ids = [sides[1].search_ids(q, 5) for q in timed]
            same = sum(o[0] == p[0] for o, p in zip(ours_ids, peer_ids, strict=True))
            near = sum(o[0] in p for o, p in zip(ours_ids, peer_ids, strict=True))
            result["top1_agreement"] = round(same / len(timed), 3)
            result["top1_in_peer_top5"] = round(near / len(timed), 3)
            say("top-1 agreement on real text (README and docs)")
            ours_side, peer_side = sides
            assert isinstance(ours_side, Ours) and isinstance(peer_side, Peer)
            result["real_text"] = real_text_agreement(ours_side.embedder.embed, peer_side.encode)
    finally:
        for side in sides:
            side.close()
    say("cold searches (new processes)")
    result["ours"]["cold_search"] = measure_cold(
        "ours", workdir / "ours", queries[0], args.k, args.cold_runs, args.embedder
    )
    if "peer" in result:
        result["peer"]["cold_search"] = measure_cold(
            "peer", workdir / "peer", queries[0], args.k, args.cold_runs
        )
    return result


# --- reporting ----------------------------------------------------------------------

SEARCH_ROWS = [
    ("index chunks/s", ("index", "chunks_per_s"), "higher", TARGET_INDEX_RATIO),
    ("search p50 ms", ("search", "p50_ms"), "lower", TARGET_SEARCH_RATIO),
    ("search p99 ms", ("search", "p99_ms"), "lower", None),
    ("embed query p50 ms", ("embed_query", "p50_ms"), "lower", None),
    ("model load s", ("model_load_s",), "lower", None),
    ("cold search s (median)", ("cold_search", "median_s"), "lower", None),
]


def report_search(search: dict[str, Any]) -> dict[str, Any]:
    """Print the search table; return the ratios ours/peer and the target verdicts."""
    ours, peer = search.get("ours"), search.get("peer")
    lines = [
        f"vault search: {search['chunks']:,} chunks, {search['queries']} queries, k={search['k']}",
        f"{'metric':<26}{'ours':>12}{'peer':>12}{'ours/peer':>11}  {'better':<7}target",
    ]
    ratios: dict[str, float | None] = {}
    verdicts: dict[str, bool | None] = {}
    for label, path, better, target in SEARCH_ROWS:
        o, p = pick(ours, path), pick(peer, path)
        ratio = round(o / p, 3) if o is not None and p else None
        key = "_".join(path)
        ratios[key] = ratio
        cells = [f"{v:>12,.2f}" if v is not None else f"{'-':>12}" for v in (o, p)]
        ratio_cell = f"{ratio:>11.3f}" if ratio is not None else f"{'-':>11}"
        target_cell = ""
        if target is not None:
            higher = better == "higher"
            verdicts[key] = (
                None if ratio is None else (ratio >= target if higher else ratio <= target)
            )
            outcome = {None: "-", True: "pass", False: "FAIL"}[verdicts[key]]
            target_cell = f"ours {'>=' if higher else '<='} {target}x peer: {outcome}"
        lines.append(f"{label:<26}{cells[0]}{cells[1]}{ratio_cell}  {better:<7}{target_cell}")
    if "top1_agreement" in search:
        top1 = search["top1_agreement"]
        verdicts["top1_agreement"] = top1 >= TARGET_TOP1
        outcome = "pass" if top1 >= TARGET_TOP1 else "FAIL"
        lines.append(
            f"{'top-1 agreement':<26}{top1:>12.3f}{'':>23}  {'higher':<7}"
            f">= {TARGET_TOP1}: {outcome}"
        )
        lines.append(f"{'top-1 in peer top-5':<26}{search['top1_in_peer_top5']:>12.3f}")
    real = search.get("real_text")
    if real is not None:
        verdicts["real_text_top1_agreement"] = real["top1_agreement"] >= TARGET_TOP1
        outcome = "pass" if verdicts["real_text_top1_agreement"] else "FAIL"
        lines.append(
            f"{'top-1 agreement, docs':<26}{real['top1_agreement']:>12.3f}{'':>23}  "
            f"{'higher':<7}>= {TARGET_TOP1}: {outcome}"
        )
        lines.append(
            f"  ({real['queries']} queries from headings and sentences over "
            f"{real['chunks']} chunks of README.md and docs/*.md; "
            f"{real['close_calls']:.1%} close calls, top-1/top-2 gap < {CLOSE_GAP})"
        )
    print("\n".join(lines))
    return {"ratios_ours_over_peer": ratios, "targets_met": verdicts}


# -- the add half -------------------------------------------------------------------------

ADD_RUNS = 3
TARGET_PUBLIC_VS_KUBO = 1.0  # sahara vault add --public over ipfs add --cid-version=1
TARGET_ENCRYPTED_VS_LIMIT = 0.5  # encrypted vault add over one core's sha256 + AES-GCM


def make_file(path: Path, size_mib: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(rng.randbytes(1 << 20))


def measure_limit(path: Path) -> dict[str, float]:
    """One core's sha256 + AES-256-GCM over the file's bytes (already in memory): one
    thread hashes and encrypts each 256 KiB chunk in turn (hashlib, ``cryptography``'s
    AESGCM); each alone too. The best of three passes of each."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = path.read_bytes()
    view = memoryview(data)
    segment = 1 << 18
    chunks = [bytes(view[offset : offset + segment]) for offset in range(0, len(data), segment)]
    aead = AESGCM(bytes(32))
    nonce = bytes(12)

    def sha() -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)

    def aes() -> None:
        for chunk in chunks:
            aead.encrypt(nonce, chunk, None)

    def both() -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
            aead.encrypt(nonce, chunk, None)

    def best(run: Callable[[], None]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    mib = len(data) / (1 << 20)
    return {
        "sha256_mib_s": mib / best(sha),
        "aes_gcm_mib_s": mib / best(aes),
        "limit_mib_s": mib / best(both),
    }


def _sahara(home: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAHARA_")}
    env |= {
        "SAHARA_HOME": str(home),
        "SAHARA_IDENTITY_SCRYPT_N": "1024",
        "SAHARA_PASSWORD": "bench",
    }
    out = subprocess.run(
        [sys.executable, "-m", "sahara_cli", "--json", "--no-prompt", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout) if out.stdout.strip() else {}


def _timed_add_sahara(workdir: Path, path: Path, public: bool, run: int) -> tuple[float, str]:
    home = workdir / f"home-{'pub' if public else 'enc'}-{run}"
    _sahara(home, "init")
    flags = ["--public"] if public else []
    start = time.perf_counter()
    doc = _sahara(home, "vault", "add", str(path), "--no-index", *flags)
    elapsed = time.perf_counter() - start
    shutil.rmtree(home)
    return elapsed, doc["items"][0]["cid"]


def _timed_add_kubo(workdir: Path, path: Path, ipfs: str, run: int) -> tuple[float, str]:
    repo = workdir / f"kubo-{run}"
    env = {**os.environ, "IPFS_PATH": str(repo)}
    subprocess.run([ipfs, "init", "--profile=test"], env=env, capture_output=True, check=True)
    start = time.perf_counter()
    out = subprocess.run(
        [ipfs, "add", "-Q", "--cid-version=1", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    shutil.rmtree(repo)
    return elapsed, out.stdout.strip()


def _timed_add_library(workdir: Path, path: Path, public: bool, run: int) -> tuple[float, str]:
    """``Vault.add`` in this process: the add itself, without the command's start-up."""
    from sahara_cli.identity.keys import public_key_of
    from sahara_cli.vault.core import Holder, Vault
    from sahara_cli.vault.local import LocalBlockstore

    root = workdir / f"lib-{'pub' if public else 'enc'}-{run}"
    holder = Holder("0x" + "11" * 20, public_key_of(bytes(range(1, 33))))
    with Vault(root, LocalBlockstore(root)) as vault:
        start = time.perf_counter()
        item, _ = vault.add(path, holder, public=public)
        elapsed = time.perf_counter() - start
    shutil.rmtree(root)
    return elapsed, item.cid


def measure_add(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    path = workdir / "add.bin"
    say(f"writing a {args.add_mib} MiB file")
    make_file(path, args.add_mib, args.seed)
    mib = float(args.add_mib)
    limit = measure_limit(path)
    ipfs = None
    try:
        from sahara_cli.vault.kubo import find_ipfs

        ipfs = find_ipfs()
    except Exception as exc:
        say(f"no Kubo peer: {exc}")
    times: dict[str, list[float]] = {
        "public": [],
        "encrypted": [],
        "kubo": [],
        "library_public": [],
        "library_encrypted": [],
    }
    cids: dict[str, str] = {}
    for run in range(args.add_runs):
        say(f"add run {run + 1}/{args.add_runs}")
        sides = ["public", "encrypted", "kubo", "library_public", "library_encrypted"]
        for side in sides if run % 2 == 0 else reversed(sides):
            if side.startswith("library_"):
                elapsed, cid = _timed_add_library(workdir, path, side.endswith("public"), run)
            elif side == "kubo":
                if ipfs is None:
                    continue
                elapsed, cid = _timed_add_kubo(workdir, path, ipfs, run)
            else:
                elapsed, cid = _timed_add_sahara(workdir, path, side == "public", run)
            times[side].append(elapsed)
            cids[side] = cid
    rates = {side: mib / statistics.median(t) for side, t in times.items() if t}
    public_vs_kubo = rates["public"] / rates["kubo"] if "kubo" in rates else None
    encrypted_vs_limit = rates["encrypted"] / limit["limit_mib_s"]
    return {
        "file_mib": args.add_mib,
        "runs": args.add_runs,
        "limit": limit,
        "seconds": {side: [round(x, 3) for x in t] for side, t in times.items()},
        "mib_s": rates,
        "cid_public": cids.get("public"),
        "cid_kubo": cids.get("kubo"),
        "same_cid": cids.get("public") == cids.get("kubo") if "kubo" in cids else None,
        "public_vs_kubo": public_vs_kubo,
        "encrypted_vs_limit": encrypted_vs_limit,
        "targets_met": {
            "public_vs_kubo": None
            if public_vs_kubo is None
            else public_vs_kubo >= TARGET_PUBLIC_VS_KUBO,
            "encrypted_vs_limit": encrypted_vs_limit >= TARGET_ENCRYPTED_VS_LIMIT,
        },
    }


def report_add(add: dict[str, Any]) -> list[str]:
    rates = add["mib_s"]
    lines = [
        f"add of a {add['file_mib']} MiB file (median of {add['runs']} runs, whole command)",
        f"  sha256 alone            {add['limit']['sha256_mib_s']:8.0f} MiB/s",
        f"  AES-256-GCM alone       {add['limit']['aes_gcm_mib_s']:8.0f} MiB/s",
        f"  sha256 + AES-GCM limit  {add['limit']['limit_mib_s']:8.0f} MiB/s  (one core, "
        "256 KiB chunks)",
        f"  sahara vault add --public {rates['public']:6.0f} MiB/s",
        f"  sahara vault add (encrypted) {rates['encrypted']:3.0f} MiB/s"
        f"  = {add['encrypted_vs_limit']:.2f}x the limit (target >= 0.5)",
    ]
    lines.append(
        f"  Vault.add in-process: public {rates['library_public']:.0f} MiB/s, encrypted "
        f"{rates['library_encrypted']:.0f} MiB/s (no command start-up)"
    )
    if add.get("public_vs_kubo") is not None:
        lines.append(
            f"  Kubo ipfs add            {rates['kubo']:6.0f} MiB/s; ours/Kubo = "
            f"{add['public_vs_kubo']:.2f}x (target >= 1.0); same CID: {add['same_cid']}"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks to index (10,000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries (200)")
    parser.add_argument("--k", type=int, default=5, help="results per query (5)")
    parser.add_argument("--cold-runs", type=int, default=2, help="new-process searches (2)")
    parser.add_argument(
        "--peer", default="sentence-transformers", choices=["sentence-transformers", "none"]
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic corpus")
    parser.add_argument(
        "--embedder",
        default="onnx",
        choices=["onnx", "onnx-int8", "minilm"],
        help="our side's embedder (onnx, the vault's default)",
    )
    parser.add_argument("--add-mib", type=int, default=256, help="size of the added file (256)")
    parser.add_argument("--add-runs", type=int, default=3, help="timed adds per side (3)")
    parser.add_argument("--skip-add", action="store_true", help="skip the add half")
    parser.add_argument("--skip-search", action="store_true", help="skip the search half")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    args = parser.parse_args(argv)
    if args.chunks < 1 or args.queries < 2 or args.k < 1:
        parser.error("--chunks and --k must be at least 1, --queries at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc: dict[str, Any] = {
        "benchmark": "vault",
        "machine": machine(),
        "peer": args.peer,
    }
    workdir = Path(tempfile.mkdtemp(prefix="sahara-bench-vault-"))
    try:
        if not args.skip_add:
            add = measure_add(args, workdir)
            doc["add"] = add
            print("\n".join(report_add(add)))
            print()
        if not args.skip_search:
            search = measure_search(args, workdir)
            doc["search"] = {**search, **report_search(search)}
            print()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return finish(doc, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
