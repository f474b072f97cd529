"""Faults during corpus encoding: an interrupted run resumes and ends byte-identical.

The fast counterpart of ``scripts/fault_test.py``: a tiny random BERT as the SPLADE backbone on
generated data, interrupted at chunk boundaries (an exception) and killed with SIGKILL in a
subprocess; each resumed ``run.trec`` must equal the uninterrupted one byte for byte.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from omegaconf import OmegaConf

from irbench.config import compose
from irbench.pipeline import _index_entry, make_encoder, run
from irbench.runs import atomic, shards
from irbench.types import Doc

CHUNK = 25  # 300 generated docs -> 12 chunks


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT masked-LM (hidden 16, vocab 120) with a WordPiece tokenizer."""
    from tests.conftest import WORDS, save_tiny_bert

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = list("bcdfghjklmnpqrstvwxz") + [f"##{c}" for c in "bcdfghjklmnpqrstvwxz"]
    vocab = specials + pieces + WORDS[: 120 - len(specials) - len(pieces)]

    def spread(model) -> None:  # logits around 0, so that many weights are positive
        model.cls.predictions.decoder.bias.normal_(0.0, 1.0)

    return save_tiny_bert(tmp_path_factory.mktemp("fault-bert"), vocab, max_length=64, init=spread)


def overrides(beir: Path, bert: Path, cache: Path, run_dir: Path) -> list[str]:
    return [
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir}", "k=20",
        "encoder=splade", f"encoder.backbone={bert}", "encoder.device=cpu",
        f"encode.chunk_size={CHUNK}", f"cache_dir={cache}", f"run_dir={run_dir}",
    ]  # fmt: skip


def encoded_chunks(cache: Path) -> list[str]:
    return sorted(glob.glob(str(cache / "encoded" / "*" / "chunk-*" / "COMPLETE")))


def temporaries(cache: Path) -> list[str]:
    return glob.glob(str(cache / "**" / ".*.tmp-*"), recursive=True)


@pytest.fixture
def reference(beir_dir: Path, tiny_bert: Path, tmp_path: Path) -> bytes:
    run(compose(overrides(beir_dir, tiny_bert, tmp_path / "c0", tmp_path / "r0")))
    return (tmp_path / "r0" / "run.trec").read_bytes()


def test_interrupts_at_chunk_boundaries_resume_identically(
    beir_dir, tiny_bert, tmp_path, reference, monkeypatch
):
    cache, run_dir = tmp_path / "c1", tmp_path / "r1"
    cfg = compose(overrides(beir_dir, tiny_bert, cache, run_dir))
    save = shards.save_vectors
    for crash_at in (3, 5):  # interrupted while writing the 3rd new chunk, then the 5th
        calls = []

        def crashing_save(folder, vectors, calls=calls, crash_at=crash_at):
            calls.append(folder)
            if len(calls) == crash_at:
                raise KeyboardInterrupt
            save(folder, vectors)

        monkeypatch.setattr(shards, "save_vectors", crashing_save)
        before = len(encoded_chunks(cache))
        with pytest.raises(KeyboardInterrupt):
            run(cfg)
        assert len(encoded_chunks(cache)) == before + crash_at - 1  # done chunks are kept
        assert not temporaries(cache)  # an exception cleans its temporary folders
        assert not (run_dir / "run.trec").exists()
    monkeypatch.setattr(shards, "save_vectors", save)
    run(cfg)
    assert (run_dir / "run.trec").read_bytes() == reference
    manifest = OmegaConf.load(run_dir / "manifest.json")
    assert manifest.index.chunks == 12 and manifest.index.encoded == 12 - 2 - 4


# Runs `irbench run` with each chunk's save slowed down, so that a kill lands mid-encoding.
DRIVER = """
import sys, time
from irbench.runs import shards
save, delay = shards.save_vectors, float(sys.argv[1])
def slow_save(folder, vectors):
    time.sleep(delay)
    save(folder, vectors)
shards.save_vectors = slow_save
sys.argv = ["irbench", *sys.argv[2:]]
from irbench.cli.app import main
main()
"""


def test_sigkill_mid_encoding_then_resume_is_identical(beir_dir, tiny_bert, tmp_path, reference):
    cache, run_dir, log = tmp_path / "c2", tmp_path / "r2", tmp_path / "log.txt"
    args = [sys.executable, "-c", DRIVER, "0.2", "run"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*args, *overrides(beir_dir, tiny_bert, cache, run_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(encoded_chunks(cache)) < 2 and proc.poll() is None:  # more kills: the script
        assert time.monotonic() < deadline, "the encoding did not progress"
        time.sleep(0.01)
    time.sleep(0.05)  # into the next chunk's (slowed) save
    if proc.poll() is not None:
        pytest.fail(f"ended before the kill:\n{log.read_text()[-3000:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert 2 <= len(encoded_chunks(cache)) < 12
    assert not glob.glob(str(cache / "index" / "*" / "COMPLETE"))
    assert glob.glob(str(cache / "index" / ".*.tmp-*"))  # the killed build's folder
    assert glob.glob(str(cache / "index" / "*.lock"))  # and its lock file stay behind
    run(compose(overrides(beir_dir, tiny_bert, cache, run_dir)))  # no cleaning in between
    assert (run_dir / "run.trec").read_bytes() == reference
    assert not temporaries(cache)  # the killed process's temporaries were removed


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = atomic._HOST
    target = tmp_path / "entry"
    names = {
        f".entry.tmp-{host}-{dead.pid}": True,  # a killed process of this host
        f".entry.tmp-{dead.pid}": True,  # the older name, without the host
        f".entry.tmp-{host}-{os.getppid()}": False,  # a live process
        f".entry.tmp-elsewhere-{dead.pid}": False,  # another machine sharing the folder
        f".entry2.tmp-{host}-{dead.pid}": False,  # another target
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.npy").write_bytes(b"partial")
    (tmp_path / f".run.trec.tmp-{host}-{dead.pid}").write_text("half a line")
    with atomic.atomic_dir(target) as tmp:
        (tmp / "f").write_text("done")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"entry", f".run.trec.tmp-{host}-{dead.pid}"} | {
        n for n, stale in names.items() if not stale
    }
    atomic.write_text(tmp_path / "run.trec", "ok\n")
    assert not (tmp_path / f".run.trec.tmp-{host}-{dead.pid}").exists()


class IdEncoder:
    """Deterministic sparse vectors from doc ids (no model)."""

    kind = "sparse"
    shardable = True
    vocab_size = 8

    def encode_corpus(self, docs):
        docs = list(docs)
        rows = np.zeros((len(docs), self.vocab_size), dtype=np.float32)
        for r, d in enumerate(docs):
            rows[r, int(d.doc_id[1:]) % self.vocab_size] = 1 + int(d.doc_id[1:])
        yield sp.csr_matrix(rows)


def test_chunks_of_another_chunk_size_are_reencoded_not_merged(tmp_path):
    docs = [Doc(f"d{i}", "") for i in range(10)]
    plan = {"shard": None, "num_shards": 1}
    shards.encode_chunks(
        tmp_path, IdEncoder(), docs, shards.plan(OmegaConf.create({**plan, "chunk_size": 4}), 10)
    )
    # chunk_size 5: chunk 0 and 1 exist (docs 0-3 and 4-7); merging them would lose docs 8-9
    new = shards.plan(OmegaConf.create({**plan, "chunk_size": 5}), 10)
    info = shards.encode_chunks(tmp_path, IdEncoder(), docs, new)
    assert info["encoded"] == 2 and info["missing"] == 0
    vectors, ids = shards.merge_chunks(tmp_path, new.n_chunks)
    assert ids == [d.doc_id for d in docs]
    assert vectors.toarray().sum(axis=1).tolist() == [float(i + 1) for i in range(10)]


def test_index_key_depends_on_the_chunk_size_of_neural_encoders(beir_dir, tiny_bert, tmp_path):
    def key(*extra):
        cfg = compose(["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", *extra])
        from irbench.pipeline import load_dataset

        return _index_entry(cfg, make_encoder(cfg), load_dataset(cfg).fingerprint()).name

    neural = ("encoder=splade", f"encoder.backbone={tiny_bert}", "encoder.device=cpu")
    assert key(*neural, "encode.chunk_size=10") != key(*neural, "encode.chunk_size=20")
    assert key("encode.chunk_size=10") == key("encode.chunk_size=20")  # BM25 is not chunked
    # the batches shape the float rounding too: a cached index of another batching is not used
    assert key(*neural, "encoder.batch_size=8") != key(*neural, "encoder.batch_size=32")
    assert key(*neural, "+encoder.sort_window=64") != key(*neural, "+encoder.sort_window=4096")
    assert key("+encoder.batch_size=10") == key("+encoder.batch_size=20")  # BM25: no effect


def test_encoded_corpus_key_depends_on_the_batching(beir_dir, tiny_bert):
    from irbench.pipeline import _encoded_entry, load_dataset

    def key(*extra):
        cfg = compose(["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
                       "encoder=splade", f"encoder.backbone={tiny_bert}", *extra])  # fmt: skip
        return _encoded_entry(cfg, make_encoder(cfg), load_dataset(cfg).fingerprint()).name

    assert key("encoder.batch_size=8") != key("encoder.batch_size=32")
    assert key("encoder.device=cpu") == key("encoder.device=auto")


@pytest.mark.parametrize("index", ["numba", "numba_approx"])
def test_sparse_index_builds_from_the_chunks_without_merging_them(
    beir_dir, tiny_bert, tmp_path, monkeypatch, index
):
    """`irbench index` streams the encoded chunks into the index (never the whole corpus in
    memory); the index and the corpus statistics equal those of the merged matrix."""
    from irbench.index import index_class
    from irbench.pipeline import build_index

    cfg = compose(
        [*overrides(beir_dir, tiny_bert, tmp_path / "c", tmp_path / "r"), f"index={index}"]
    )

    def no_merge(*_, **__):
        raise AssertionError("the pipeline merged the chunks")

    cls = index_class(index)
    streamed = []

    def build_streaming(blocks, n_terms, **knobs):
        streamed.append([b.shape[0] for b in blocks()])
        return original(blocks, n_terms, **knobs)

    original = cls.build_streaming
    monkeypatch.setattr(shards, "merge_chunks", no_merge)
    monkeypatch.setattr(cls, "build_streaming", build_streaming)
    handle = build_index(cfg)
    monkeypatch.undo()
    info = handle.info
    assert info["chunks"] == 12 and streamed == [[CHUNK] * 12]  # the chunks, as blocks
    merged, docnos = shards.merge_chunks(Path(info["encoded_cache"]), info["chunks"])
    assert handle.docnos == docnos
    assert info["nnz"] == merged.nnz and info["vocab_size"] == merged.shape[1]
    assert info["empty_docs"] == int((np.diff(merged.indptr) == 0).sum())
    df = np.bincount(merged.indices, minlength=merged.shape[1])
    assert np.array_equal(np.load(handle.path / "doc_df.npy"), df)

    knobs = {k: v for k, v in cfg.index.items() if k not in ("_target_", "_partial_", "name")}
    cls.build(merged, **knobs).save(tmp_path / "ref")
    built = sorted(p.name for p in (handle.path / "index").iterdir())
    assert built == sorted(p.name for p in (tmp_path / "ref").iterdir())
    for name in built:
        assert (handle.path / "index" / name).read_bytes() == (
            tmp_path / "ref" / name
        ).read_bytes(), name


@pytest.mark.parametrize("side", ["query", "doc"])
def test_an_idf_head_is_fitted_on_the_corpus_and_saved_with_the_index(
    beir_dir, tiny_bert, tmp_path, side
):
    """`irbench run encoder.query.head=idf` (or the doc side): the idf table comes from the
    corpus, is kept with the cached index, and a reused index gives the same run."""
    from irbench.data.beir import BeirDataset
    from irbench.pipeline import make_encoder

    extra = [f"encoder.{side}.head=idf"]
    cfg = compose([*overrides(beir_dir, tiny_bert, tmp_path / "c", tmp_path / "r"), *extra])
    run(cfg)
    first = (tmp_path / "r" / "run.trec").read_bytes()
    assert first
    saved = list((tmp_path / "c" / "index").glob("*/encoder/idf.npy"))
    assert len(saved) == 1
    # what a fresh encoder fits on the same docs (fit itself: test_sparse_encoders)
    fresh = make_encoder(cfg)
    fresh.fit(BeirDataset(beir_dir).docs_iter())
    np.testing.assert_array_equal(np.load(saved[0]), fresh.idf)
    cfg2 = compose([*overrides(beir_dir, tiny_bert, tmp_path / "c", tmp_path / "r2"), *extra])
    run(cfg2)  # the index and its idf table reused
    assert (tmp_path / "r2" / "run.trec").read_bytes() == first


def test_reproduce_reports_an_edited_encoded_chunk_instead_of_encoding_it_again(
    beir_dir, tiny_bert, tmp_path
):
    import shutil

    from irbench.runs.reproduce import reproduce

    cache, run_dir = tmp_path / "c", tmp_path / "r"
    run(compose(overrides(beir_dir, tiny_bert, cache, run_dir)))
    entry = next(p for p in (cache / "index").glob("*.splade.*") if p.is_dir())
    shutil.rmtree(entry)  # only the encoded chunks are left
    chunk = Path(encoded_chunks(cache)[0]).parent
    ids = (chunk / "docnos.txt").read_text().splitlines()
    ids[0], ids[1] = ids[1], ids[0]
    (chunk / "docnos.txt").write_text("".join(i + "\n" for i in ids))
    report = reproduce(run_dir)
    assert not report.identical and "checksum mismatch" in report.error
    assert str(chunk) in report.error
