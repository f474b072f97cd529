"""Chunked, resumable, shardable corpus encoding (irbench.runs.shards)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from omegaconf import OmegaConf

from irbench.errors import CacheError, ConfigError, DataError
from irbench.runs import shards
from irbench.runs.cache import seal
from irbench.types import Doc, RowBlocks


class ToyEncoder:
    """Deterministic sparse vectors from doc ids; can be told to crash on a given call."""

    kind = "sparse"
    shardable = True
    vocab_size = 50

    def __init__(self, crash_on_call: int | None = None):
        self.calls = 0
        self.crash_on_call = crash_on_call
        self.encoded: list[str] = []

    def encode_corpus(self, docs):
        self.calls += 1
        if self.crash_on_call == self.calls:
            raise KeyboardInterrupt
        docs = list(docs)
        self.encoded += [d.doc_id for d in docs]
        rows = []
        for d in docs:
            i = int(d.doc_id[1:])
            row = np.zeros(self.vocab_size, dtype=np.float32)
            row[[i % 50, (3 * i) % 50]] = [1 + i % 7, 0.5]
            rows.append(row)
        yield sp.csr_matrix(np.array(rows, dtype=np.float32).reshape(len(docs), self.vocab_size))


def docs(n: int) -> list[Doc]:
    return [Doc(f"d{i}", f"text {i}") for i in range(n)]


def cfg(chunk_size=4, shard=None, num_shards=1):
    return OmegaConf.create({"chunk_size": chunk_size, "shard": shard, "num_shards": num_shards})


def reference(n: int):
    return shards.stack(list(ToyEncoder().encode_corpus(docs(n))), 50)


def test_chunks_merge_in_corpus_order(tmp_path):
    plan = shards.plan(cfg(chunk_size=4), 10)
    assert plan.n_chunks == 3
    info = shards.encode_chunks(tmp_path, ToyEncoder(), docs(10), plan)
    assert info == {"chunks": 3, "encoded": 3, "missing": 0, "encode_s": info["encode_s"]}
    vectors, ids = shards.merge_chunks(tmp_path, plan.n_chunks)
    assert ids == [f"d{i}" for i in range(10)]
    assert (vectors != reference(10)).nnz == 0


def test_interrupted_run_resumes_from_the_last_complete_chunk(tmp_path):
    plan = shards.plan(cfg(chunk_size=4), 10)
    with pytest.raises(KeyboardInterrupt):
        shards.encode_chunks(tmp_path, ToyEncoder(crash_on_call=2), docs(10), plan)
    complete = sorted(p.name for p in tmp_path.iterdir() if (p / "COMPLETE").exists())
    assert complete == ["chunk-000000"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    again = ToyEncoder()
    info = shards.encode_chunks(tmp_path, again, docs(10), plan)
    assert info["encoded"] == 2 and again.encoded == [f"d{i}" for i in range(4, 10)]
    vectors, _ = shards.merge_chunks(tmp_path, plan.n_chunks)
    assert (vectors != reference(10)).nnz == 0


def test_shards_split_the_work_and_merge_identically(tmp_path):
    workers = []
    for shard in range(2):
        enc = ToyEncoder()
        info = shards.encode_chunks(tmp_path, enc, docs(10), shards.plan(cfg(4, shard, 2), 10))
        workers.append(enc.encoded)
        assert info["missing"] == (1 if shard == 0 else 0)
    assert workers[0] == ["d0", "d1", "d2", "d3", "d8", "d9"]
    assert workers[1] == ["d4", "d5", "d6", "d7"]
    vectors, ids = shards.merge_chunks(tmp_path, 3)
    assert (vectors != reference(10)).nnz == 0 and ids == [f"d{i}" for i in range(10)]


def test_bad_shard_settings_and_duplicates():
    with pytest.raises(ConfigError, match="encode.shard"):
        shards.plan(cfg(4, shard=2, num_shards=2), 10)
    with pytest.raises(ConfigError, match="chunk_size"):
        shards.plan(cfg(0), 10)
    with pytest.raises(DataError, match="duplicate doc id 'd1'"):
        shards.check_unique(["d0", "d1", "d1"])


def test_dense_vectors_round_trip(tmp_path):
    dense = np.arange(12, dtype=np.float32).reshape(3, 4)
    shards.save_vectors(tmp_path, dense)
    assert np.array_equal(shards.load_vectors(tmp_path), dense)


def test_stream_chunks_reads_the_corpus_block_by_block_on_every_pass(tmp_path):
    plan = shards.plan(cfg(chunk_size=4), 10)
    shards.encode_chunks(tmp_path, ToyEncoder(), docs(10), plan)
    source, ids = shards.stream_chunks(tmp_path, plan.n_chunks)
    assert isinstance(source, RowBlocks) and source.n_terms == 50
    assert ids == [f"d{i}" for i in range(10)]
    for _ in range(2):  # each call starts again from the first chunk
        blocks = list(source.blocks())
        assert [b.shape[0] for b in blocks] == [4, 4, 2]
        assert (sp.vstack(blocks, format="csr") != reference(10)).nnz == 0


def test_stream_chunks_rejects_chunks_of_different_widths(tmp_path):
    plan = shards.plan(cfg(chunk_size=4), 10)
    shards.encode_chunks(tmp_path, ToyEncoder(), docs(10), plan)
    folder = shards.chunk_dir(tmp_path, 1)
    wide = sp.csr_matrix(np.ones((4, 60), dtype=np.float32))
    shards.save_vectors(folder, wide)  # then re-seal, as if written by another encoder
    (folder / "COMPLETE").unlink()
    seal(folder, {"docs": 4})
    for read in (shards.stream_chunks, shards.merge_chunks):
        with pytest.raises(CacheError, match=r"2 different vocabulary sizes \[50, 60\]"):
            read(tmp_path, plan.n_chunks)


def test_a_chunk_that_vanishes_after_the_check_is_a_one_line_cache_error(tmp_path):
    plan = shards.plan(cfg(chunk_size=4), 10)
    shards.encode_chunks(tmp_path, ToyEncoder(), docs(10), plan)
    source, _ = shards.stream_chunks(tmp_path, plan.n_chunks)
    vectors = shards.chunk_dir(tmp_path, 2) / "vectors.npz"
    vectors.write_bytes(b"not a zip file")
    with pytest.raises(CacheError, match="chunk-000002: cannot read the vectors"):
        list(source.blocks())
    vectors.unlink()
    with pytest.raises(CacheError, match="chunk-000002: no vectors file"):
        list(source.blocks())
    shards.save_vectors(vectors.parent, sp.csr_matrix((2, 60), dtype=np.float32))
    with pytest.raises(CacheError, match="chunk-000002: 60 terms, not 50 as when checked"):
        list(source.blocks())


def test_stream_chunks_gives_dense_chunks_one_at_a_time(tmp_path):
    from irbench.types import DenseBlocks

    for c, rows in enumerate((2, 1)):
        folder = shards.chunk_dir(tmp_path, c)
        folder.mkdir()
        shards.save_vectors(folder, np.full((rows, 3), c, dtype=np.float32))
        (folder / "docnos.txt").write_text("".join(f"c{c}r{r}\n" for r in range(rows)))
        seal(folder, {"docs": rows})
    vectors, ids = shards.stream_chunks(tmp_path, 2)
    assert isinstance(vectors, DenseBlocks) and vectors.shape == (3, 3)
    for _ in range(2):  # each pass reads the chunks again, memory-mapped
        blocks = list(vectors.blocks())
        assert [b.tolist() for b in blocks] == [[[0] * 3, [0] * 3], [[1] * 3]]
        assert all(isinstance(b, np.memmap) for b in blocks)
    assert ids == ["c0r0", "c0r1", "c1r0"]
