"""The compute jobs of one home: a folder each under ``compute/jobs/``.

A job's folder holds ``job.json`` (what it is and where it stands), its checkpoints while
it trains, and its output (an adapter, a merged model) until that is in the vault. The
key of a job is a hash of what decides its result (kind, base, inputs, settings, name), so
running the same command again after an interrupt finds the same folder and resumes.
``job.json`` is written atomically; a job whose process died shows as interrupted.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sahara_cli.errors import ComputeJobNotFound as JobNotFound
from sahara_cli.errors import ComputeJobState, InvalidDataError
from sahara_cli.fsutil import atomic_write
from sahara_cli.identity.keys import keccak256

JOBS_DIR = Path("compute") / "jobs"


@dataclass
class LocalJob:
    """``job.json``: a job as this home knows it."""

    key: str
    kind: str
    name: str
    base: str
    base_asset: int
    inputs: list[int]
    hparams: dict[str, Any]
    hparams_hash: str
    created: float = field(default_factory=time.time)
    #: running, interrupted, trained, recorded (then the chain's state rules).
    state: str = "running"
    pid: int | None = None
    job_id: int | None = None
    tx: str | None = None
    output_cid: str | None = None
    output_path: str | None = None
    asset_id: int | None = None
    weights_bps: list[int] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    losses: list[float | None] = field(default_factory=list)

    def save(self, root: Path) -> None:
        folder = job_dir(root, self.key)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "job.json", json.dumps(asdict(self), indent=1).encode())

    def live_state(self) -> str:
        """``running`` only while its process lives; a dead run is ``interrupted``."""
        if self.state != "running":
            return self.state
        return "running" if self.pid and _alive(self.pid) else "interrupted"


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live sahara process (a pid the run's died with may since
    name another program, which must never be taken for the run, or signalled)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's
        return False
    if not Path("/proc/self/cmdline").exists():  # no procfs: the pid is all there is
        return True
    try:
        return b"sahara" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def job_key(kind: str, base: str, inputs: list[int], hparams_json: str, name: str) -> str:
    text = json.dumps([kind, base, inputs, hparams_json, name], separators=(",", ":"))
    return keccak256(text.encode()).hex()[:12]


def job_dir(root: Path, key: str) -> Path:
    return root / JOBS_DIR / key


def load(root: Path, key: str) -> LocalJob:
    path = job_dir(root, key) / "job.json"
    try:
        data = json.loads(path.read_text())
        return LocalJob(**data)
    except FileNotFoundError:
        raise JobNotFound(f"no compute job {key!r} in this home") from None
    except (ValueError, TypeError) as exc:
        raise InvalidDataError(f"{path} is not a job record: {exc}") from None


def all_jobs(root: Path) -> Iterator[LocalJob]:
    folder = root / JOBS_DIR
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if (entry / "job.json").is_file():
            try:
                yield load(root, entry.name)
            except InvalidDataError:
                continue


def find(root: Path, ref: str) -> LocalJob | None:
    """A local job by its key, or by its chain id (``7`` or ``job:7``)."""
    text = ref.strip().removeprefix("job:")
    if text.isdigit():
        for job in all_jobs(root):
            if job.job_id == int(text):
                return job
        return None
    try:
        return load(root, text)
    except JobNotFound:
        return None


def mark(job: LocalJob, root: Path, **changes: Any) -> LocalJob:
    for name, value in changes.items():
        setattr(job, name, value)
    job.save(root)
    return job


def this_process() -> int:
    return os.getpid()


def earlier_run(root: Path, key: str, *, recorded: str, hint: str) -> LocalJob | None:
    """The job ``key`` of an earlier run in this home (None: a new one). One that was
    recorded on chain is refused (``recorded`` is the message; ``{job_id}`` in it is
    filled in), and so is one still running in another process."""
    try:
        job = load(root, key)
    except JobNotFound:
        return None
    if job.job_id is not None:
        raise ComputeJobState(recorded.format(job_id=job.job_id, key=key), hint=hint)
    if job.live_state() == "running":
        raise ComputeJobState(f"job {key} is running in process {job.pid}")
    return job
