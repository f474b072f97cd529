#!/usr/bin/env python3
"""Scripted fault test: kill -9 during corpus encoding, rerun, compare run.trec byte for byte.

Runs the experiment once uninterrupted (the reference), then ``--trials`` times: starts
``irbench run`` with a fresh cache folder, SIGKILLs its process group at a random point of the
encoding, reruns the same command to completion and compares the final ``run.trec`` (and
``metrics.json``) with the reference. Prints ``N/T identical`` and exits 1 unless all are.

Where the kill lands (``--kill-at``):

* ``chunks`` (neural encoders; the default unless ``encoder=bm25``): after ``k`` encoded chunks
  have appeared under ``cache_dir/encoded`` (``k`` drawn in ``[0, chunks - 2]``), plus a random
  jitter of up to one chunk's encoding time, so the kill falls inside the encoding of chunk
  ``k`` or ``k + 1`` (model forward, saving the vectors, sealing, renaming);
* ``build`` (BM25: the corpus is encoded in one pass inside the index build): a random time
  between the appearance of the index entry's temporary folder and the reference's build time.

Each trial also reports what the kill left behind (temporary folders, lock files) and checks
that the rerun removed the temporaries. Randomness comes from ``--seed`` only.

It drives the ``irbench`` command line only (no irbench import). Run it from the repository
root, under the shared CPU lock on a shared machine::

    flock /tmp/irbench-cpu.lock python scripts/fault_test.py --trials 10 --seed 0
    flock /tmp/irbench-cpu.lock python scripts/fault_test.py --trials 10 -- encoder=bm25
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OVERRIDES = [
    "dataset=cranfield",
    "dataset.path=../shared/data/cranfield",
    "encoder=splade",
    "encoder.backbone=../shared/models/splade-tiny",
    "index=numba",
    "encode.chunk_size=128",
]
POLL_S = 0.02


def irbench_cmd() -> list[str]:
    exe = shutil.which("irbench")
    return [exe] if exe else [sys.executable, "-m", "irbench.cli.app"]


def chunks_done(cache: Path) -> list[float]:
    """Completion times of the encoded chunks under ``cache`` (sorted)."""
    marks = glob.glob(str(cache / "encoded" / "*" / "chunk-*" / "COMPLETE"))
    return sorted(os.path.getmtime(m) for m in marks if os.path.exists(m))


def index_tmp(cache: Path) -> list[str]:
    return glob.glob(str(cache / "index" / ".*.tmp-*"))


def index_complete(cache: Path) -> bool:
    return bool(glob.glob(str(cache / "index" / "*" / "COMPLETE")))


def leftovers(cache: Path) -> dict[str, int]:
    temps = [p for p in glob.glob(str(cache / "**" / ".*.tmp-*"), recursive=True) if ".tmp-" in p]
    locks = glob.glob(str(cache / "**" / "*.lock"), recursive=True)
    return {"temps": len(temps), "locks": len(locks)}


def start(overrides: list[str], cache: Path, run_dir: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", IRBENCH_FP_CACHE=str(cache.parent / "fp.json"))
    args = [*irbench_cmd(), "run", *overrides, f"cache_dir={cache}", f"run_dir={run_dir}"]
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: SIGKILL reaches every child
        )


def finish(proc: subprocess.Popen, log: Path, what: str) -> None:
    rc = proc.wait()
    if rc != 0:
        tail = log.read_text(errors="replace")[-2000:]
        sys.exit(f"fault_test: {what} failed with exit code {rc}; log {log}:\n{tail}")


def reference(overrides: list[str], work: Path) -> dict:
    """The uninterrupted run, timed: chunk count and times, build time."""
    folder = work / "reference"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cache, log = folder / "cache", folder / "log.txt"
    t0 = time.time()
    proc = start(overrides, cache, folder / "run", log)
    build_start = build_end = None
    while proc.poll() is None:
        if build_start is None and index_tmp(cache):
            build_start = time.time()
        if build_end is None and index_complete(cache):
            build_end = time.time()
        time.sleep(POLL_S)
    finish(proc, log, "the reference run")
    marks = chunks_done(cache)
    gaps = sorted(b - a for a, b in zip(marks, marks[1:], strict=False))
    index = json.loads((folder / "run" / "manifest.json").read_text())["index"]
    return {
        "folder": folder,
        "wall_s": time.time() - t0,
        "chunks": len(marks),
        "chunk_s": gaps[len(gaps) // 2] if gaps else 0.5,  # median; the first includes loading
        "build_s": (build_end or time.time()) - (build_start or t0),
        "encode_s": float(index.get("encode_s", 0.0)),
        "run": (folder / "run" / "run.trec").read_bytes(),
        "metrics": (folder / "run" / "metrics.json").read_bytes(),
    }


def trial(i: int, rng: random.Random, overrides, work: Path, ref: dict, mode: str) -> dict:
    folder = work / f"trial-{i:02d}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cache, run_dir, log = folder / "cache", folder / "run", folder / "log.txt"
    if mode == "chunks":
        k = rng.randint(0, max(ref["chunks"] - 2, 0))
        jitter = rng.uniform(0, ref["chunk_s"])
        plan = f"after {k} chunks + {jitter:.2f}s"
    else:
        k, jitter = -1, rng.uniform(0, ref["encode_s"])
        plan = f"{jitter:.2f}s into the index build (encoding took {ref['encode_s']:.2f}s)"
    proc = start(overrides, cache, run_dir, log)
    armed = None  # when the trigger fired
    while proc.poll() is None:
        if armed is None and index_tmp(cache):  # the build, hence the encoding, has begun
            if mode == "build" or len(chunks_done(cache)) >= k:
                armed = time.time()
        if armed is not None and time.time() - armed >= jitter:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(POLL_S)
    rc = proc.wait()
    killed = rc == -signal.SIGKILL
    at_kill = {"chunks": len(chunks_done(cache)), **leftovers(cache)}
    during = killed and not index_complete(cache)
    if mode == "chunks":
        during = during and at_kill["chunks"] < ref["chunks"]
    t0 = time.time()
    finish(start(overrides, cache, run_dir, log), log, f"the rerun of trial {i}")
    after = leftovers(cache)
    same = (run_dir / "run.trec").read_bytes() == ref["run"]
    same_metrics = (run_dir / "metrics.json").read_bytes() == ref["metrics"]
    return {
        "trial": i,
        "plan": plan,
        "killed": killed,
        "during_encoding": during,
        "at_kill": at_kill,
        "rerun_s": round(time.time() - t0, 1),
        "temps_after_rerun": after["temps"],
        "identical": same,
        "metrics_identical": same_metrics,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("runs/.fault-test"))
    ap.add_argument("--kill-at", choices=["chunks", "build", "auto"], default="auto")
    ap.add_argument(
        "overrides", nargs="*", help="irbench overrides, appended to the defaults (after --)"
    )
    args = ap.parse_args(argv)
    keys = {o.split("=", 1)[0] for o in args.overrides}
    overrides = [o for o in DEFAULT_OVERRIDES if o.split("=", 1)[0] not in keys]
    overrides += args.overrides
    mode = args.kill_at
    if mode == "auto":
        encoders = [o.split("=", 1)[1] for o in overrides if o.startswith("encoder=")]
        mode = "build" if encoders and encoders[-1] == "bm25" else "chunks"
    if mode == "build":  # BM25 ignores these; drop them so the command stays valid
        overrides = [o for o in overrides if not o.startswith("encoder.backbone=")]
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"irbench {' '.join(overrides)}  (kill at: {mode}, seed {args.seed})", flush=True)
    ref = reference(overrides, args.work)
    print(
        f"reference: {ref['wall_s']:.1f}s, {ref['chunks']} chunks (median {ref['chunk_s']:.2f}s), "
        f"encoding {ref['encode_s']:.1f}s of a {ref['build_s']:.1f}s index build, "
        f"run.trec {len(ref['run'])} bytes",
        flush=True,
    )
    results = []
    for i in range(1, args.trials + 1):
        r = trial(i, rng, overrides, args.work, ref, mode)
        results.append(r)
        print(
            f"trial {i:2d}: kill {r['plan']}: "
            f"{'SIGKILL' if r['killed'] else 'NOT KILLED'}"
            f"{' during encoding' if r['during_encoding'] else ' (not during encoding)'}, "
            f"{r['at_kill']['chunks']} chunks done, left {r['at_kill']['temps']} temp folders "
            f"and {r['at_kill']['locks']} lock files; rerun {r['rerun_s']}s, "
            f"temps after rerun {r['temps_after_rerun']}; run.trec "
            f"{'identical' if r['identical'] else 'DIFFERENT'}, metrics.json "
            f"{'identical' if r['metrics_identical'] else 'DIFFERENT'}",
            flush=True,
        )
    n_same = sum(r["identical"] for r in results)
    n_during = sum(r["during_encoding"] for r in results)
    print(f"{n_same}/{len(results)} identical ({n_during}/{len(results)} killed during encoding)")
    ok = n_same == n_during == len(results)
    ok = ok and all(r["temps_after_rerun"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
