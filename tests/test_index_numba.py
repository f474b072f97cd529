"""NumbaIndex: exact agreement with an independent numpy brute force, persistence, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irbench.index.numba as numba_index
from irbench.errors import CacheError, ConfigError, DataError
from irbench.index import load_index
from irbench.index.base import (
    atomic_folder,
    numba_threads,
    read_header,
    resolve_threads,
    write_header,
)
from irbench.index.numba import NumbaIndex

QMAX = {"uint8": 255, "uint16": 65535}

# weight pools: tiny sets force ties; non-positive doc weights must be dropped
DOC_POOLS = [
    np.array([1.0, 2.0], np.float32),
    np.array([0.5, 0.25, 1.0, -1.0, 0.0], np.float32),
    np.array([0.1, 0.2, 0.3, 0.7], np.float32),
    np.array([1e-30, 1e-34, 1.0], np.float32),  # products underflow to 0; uint8 rounds to 0
    None,  # continuous uniform in (0, 3)
]
QUERY_POOLS = [
    np.array([1.0], np.float32),
    np.array([1.0, 2.0, 0.5], np.float32),
    np.array([0.3, 0.1, -0.5, 0.0], np.float32),  # explicit zeros and negatives
    np.array([1e-25, 1e-12, 2.0], np.float32),
    None,
]


def random_csr(rng, n_rows, n_cols, density, pool, extra_cols=0):
    """Canonical CSR with explicitly stored values (zeros included) drawn from ``pool``."""
    indptr, indices, data = [0], [], []
    for _ in range(n_rows):
        n = rng.binomial(n_cols + extra_cols, density) if n_cols + extra_cols else 0
        cols = np.sort(rng.choice(n_cols + extra_cols, size=n, replace=False))
        vals = rng.choice(pool, size=n) if pool is not None else rng.uniform(0.01, 3.0, n)
        indices.extend(cols.tolist())
        data.extend(np.asarray(vals, np.float32).tolist())
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr, np.int64)),
        shape=(n_rows, n_cols + extra_cols),
    )


def brute_force(docs, queries, k, quantize=None):
    """Reference top-k: per query term in ascending id, ``scores[docs] += f32(qw) * w``."""
    dense = docs.toarray().astype(np.float32)
    n_docs, n_terms = dense.shape
    scale = np.float32(1.0)
    if quantize is not None:
        positive = dense[dense > 0]
        max_w = float(positive.max()) if positive.size else 0.0
        scale = np.float32(max_w / QMAX[quantize]) if max_w > 0 else np.float32(1.0)
    out_s = np.full((queries.shape[0], k), -np.inf, np.float32)
    out_d = np.full((queries.shape[0], k), -1, np.int64)
    for i in range(queries.shape[0]):
        row = queries.getrow(i)
        order = np.argsort(row.indices, kind="stable")
        scores = np.zeros(n_docs, np.float32)
        touched = np.zeros(n_docs, bool)
        for t, qw in zip(row.indices[order], row.data[order], strict=True):
            if t >= n_terms:
                continue
            col = dense[:, t]
            hit = np.nonzero(col > 0)[0]
            w = col[hit]
            if quantize is not None:
                q = np.clip(np.rint(w.astype(np.float64) / float(scale)), 0, QMAX[quantize])
                w = q.astype(np.float32)
            scores[hit] += np.float32(qw) * w
            touched[hit] = True
        if quantize is not None:
            scores = scores * scale
        cand = np.nonzero(touched)[0]
        top = cand[np.lexsort((cand, -scores[cand]))][:k]
        out_s[i, : len(top)] = scores[top]
        out_d[i, : len(top)] = top
    return out_s, out_d


def assert_same(got, want):
    (gs, gd), (ws, wd) = got, want
    assert gs.dtype == np.float32 and gd.dtype == np.int64
    assert gs.shape == ws.shape and gd.shape == wd.shape
    np.testing.assert_array_equal(gd, wd)
    np.testing.assert_array_equal(gs, ws)


case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n_docs": st.integers(0, 150),  # > 64: several blocks in the dense scan
        "n_terms": st.integers(0, 25),
        "extra_cols": st.integers(0, 4),  # query terms beyond the index vocabulary
        "n_queries": st.integers(0, 9),
        "doc_density": st.sampled_from([0.0, 0.05, 0.2, 0.6, 1.0]),
        "query_density": st.sampled_from([0.0, 0.1, 0.3, 0.8]),
        "doc_pool": st.integers(0, len(DOC_POOLS) - 1),
        "query_pool": st.integers(0, len(QUERY_POOLS) - 1),
        "k": st.integers(0, 45),
    }
)


def make_case(c):
    rng = np.random.default_rng(c["seed"])
    docs = random_csr(rng, c["n_docs"], c["n_terms"], c["doc_density"], DOC_POOLS[c["doc_pool"]])
    queries = random_csr(
        rng,
        c["n_queries"],
        c["n_terms"],
        c["query_density"],
        QUERY_POOLS[c["query_pool"]],
        extra_cols=c["extra_cols"],
    )
    return docs, queries


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(case)
def test_search_equals_brute_force_at_any_thread_count(c):
    docs, queries = make_case(c)
    index = NumbaIndex.build(docs)
    want = brute_force(docs, queries, c["k"])
    assert_same(index.search(queries, c["k"], threads=1), want)
    assert_same(index.search(queries, c["k"], threads=2), want)
    assert_same(index.search(queries, c["k"]), want)


@pytest.mark.parametrize("partition_k", [1, 10**9], ids=["partition", "heap"])
@SETTINGS
@given(case)
def test_partition_selection_equals_brute_force(partition_k, c):
    """From k >= PARTITION_K all candidates are gathered and partitioned (no heap); zero-sum
    matches then continue through the heap. Forced here for every k, and the heap alone."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(numba_index, "PARTITION_K", partition_k)
        docs, queries = make_case(c)
        index = NumbaIndex.build(docs)
        want = brute_force(docs, queries, c["k"])
        assert_same(index.search(queries, c["k"], threads=1), want)
        assert_same(index.search(queries, c["k"], threads=2), want)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case, st.sampled_from(["uint8", "uint16"]))
def test_quantized_equals_dequantized_brute_force(c, quantize):
    docs, queries = make_case(c)
    index = NumbaIndex.build(docs, quantize=quantize)
    assert index.weights.dtype == np.dtype(quantize)
    assert_same(
        index.search(queries, c["k"], threads=2), brute_force(docs, queries, c["k"], quantize)
    )


@pytest.fixture(scope="module")
def medium():
    """~3k docs with tied weights; queries dense enough to take both scoring paths."""
    rng = np.random.default_rng(7)
    docs = random_csr(rng, 3000, 400, 0.03, np.array([0.5, 1.0, 1.5], np.float32))
    queries = random_csr(rng, 120, 400, 0.04, np.array([1.0, 0.5], np.float32), extra_cols=3)
    queries = sp.vstack(
        [queries, random_csr(rng, 5, 400, 0.5, None, extra_cols=3)]
    ).tocsr()  # long queries
    return docs, queries


@pytest.mark.parametrize("k", [25, 1500])
@pytest.mark.parametrize("cap", ["dense", "sparse", "default"])
def test_both_scoring_paths_equal_brute_force(medium, monkeypatch, cap, k):
    docs, queries = medium
    index = NumbaIndex.build(docs)
    n_post = np.diff(index.offsets)
    per_query = np.array([n_post[r.indices[r.indices < 400]].sum() for r in queries])
    default_cap = numba_index._touched_cap(index.n_docs)
    assert (per_query > default_cap).any() and (per_query <= default_cap).any()
    if cap == "dense":
        monkeypatch.setattr(numba_index, "_touched_cap", lambda n: 0)
    elif cap == "sparse":
        monkeypatch.setattr(numba_index, "_touched_cap", lambda n: int(per_query.max()))
    want = brute_force(docs, queries, k)
    for threads in (1, 2):
        assert_same(index.search(queries, k, threads=threads), want)
    # scratch buffers are reused: a second, different batch is unaffected by the first
    assert_same(index.search(queries[::-1], k), (want[0][::-1], want[1][::-1]))


@pytest.mark.parametrize("dense", [False, True])
def test_touched_docs_scoring_zero_are_matches(monkeypatch, dense):
    # term 0 (query weight -1) touches docs 0-4, term 1 (weight 0) docs 5-6, term 2 doc 7
    rows = [0, 1, 2, 3, 4, 5, 6, 7]
    cols = [0, 0, 0, 0, 0, 1, 1, 2]
    docs = sp.csr_matrix((np.ones(8, np.float32), (rows, cols)), shape=(10, 4))
    query = sp.csr_matrix((np.array([-1.0, 0.0, 2.0], np.float32), [0, 1, 2], [0, 3]), shape=(1, 4))
    if dense:
        monkeypatch.setattr(numba_index, "_touched_cap", lambda n: 0)
    index = NumbaIndex.build(docs)
    scores, ids = index.search(query, 4)
    np.testing.assert_array_equal(ids, [[7, 5, 6, 0]])
    np.testing.assert_array_equal(scores, [[2, 0, 0, -1]])
    scores, ids = index.search(query, 12)  # docs 8 and 9 are never returned
    np.testing.assert_array_equal(ids[0, 8:], [-1] * 4)
    assert np.isneginf(scores[0, 8:]).all() and (ids[0, :8] >= 0).all()


def test_dense_scan_fills_the_heap_across_blocks(monkeypatch):
    # one term: docs 0-63 weigh 2, docs 64-199 weigh 1; the second block is all below the
    # first block's worst score, yet must fill the heap while it is not full
    weights = np.where(np.arange(200) < 64, 2.0, 1.0).astype(np.float32)
    docs = sp.csr_matrix((weights, (np.arange(200), np.zeros(200, int))), shape=(200, 1))
    monkeypatch.setattr(numba_index, "_touched_cap", lambda n: 0)
    scores, ids = NumbaIndex.build(docs).search(sp.csr_matrix(np.ones((1, 1), np.float32)), 150)
    np.testing.assert_array_equal(ids[0], np.arange(150))
    np.testing.assert_array_equal(scores[0], weights[:150])


def test_underflowing_scores_tie_with_zero_sums():
    # uint8: doc 0 rounds to q=0 (sum exactly 0); docs 1-3 have q=255 but sum * scale
    # underflows to 0 in float32: all four tie at 0 and rank by doc index
    docs = sp.csr_matrix(np.array([[1e-34], [1e-30], [1e-30], [1e-30]], np.float32))
    query = sp.csr_matrix(np.array([[1e-25]], np.float32))
    index = NumbaIndex.build(docs, quantize="uint8")
    assert index.weights.tolist() == [0, 255, 255, 255]
    scores, ids = index.search(query, 2)
    np.testing.assert_array_equal(ids, [[0, 1]])
    np.testing.assert_array_equal(scores, [[0, 0]])
    assert_same((scores, ids), brute_force(docs, query, 2, "uint8"))


def test_layout_drops_nonpositive_and_sorts_postings():
    # float64 input; row 0 stores an explicit zero (col 0) and a negative weight (col 2)
    docs = sp.csr_matrix(
        (np.array([0.0, 2.0, -1.0, 3.0, 0.5, 1.0, 4.0]), [0, 1, 2, 0, 1, 0, 2], [0, 3, 5, 7]),
        shape=(3, 3),
    )
    index = NumbaIndex.build(docs)
    assert (index.n_docs, index.n_terms, index.nnz) == (3, 3, 5)
    np.testing.assert_array_equal(index.offsets, [0, 2, 4, 5])
    np.testing.assert_array_equal(index.doc_ids, [1, 2, 0, 1, 2])
    np.testing.assert_array_equal(index.weights, np.array([3, 1, 2, 0.5, 4], np.float32))
    assert index.doc_ids.dtype == np.uint32 and index.weights.dtype == np.float32
    assert index.size_bytes == 4 * 8 + 5 * 4 + 5 * 4
    as_array = NumbaIndex.build(sp.csr_array(docs))  # csr_array and COO queries are accepted
    np.testing.assert_array_equal(as_array.doc_ids, index.doc_ids)
    query = sp.coo_matrix(np.array([[1.0, 1.0, 0.0]], np.float32))
    assert_same(as_array.search(query, 3), index.search(query.tocsr(), 3))


def test_progress_and_bad_arguments():
    calls = []
    docs = sp.random(50, 20, density=0.2, format="csr", dtype=np.float32, random_state=0)
    index = NumbaIndex.build(docs, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (50, 50)
    with pytest.raises(ConfigError):
        NumbaIndex.build(docs, quantize="int4")
    with pytest.raises(ConfigError):
        index.search(docs[:2], -1)
    for bad in (2.7, "3", True, None):  # refused, not truncated or coerced
        with pytest.raises(ConfigError, match="k must be a non-negative integer"):
            index.search(docs[:2], bad)
    assert index.search(docs[:2], np.int64(3))[1].shape == (2, 3)  # numpy ints are ints


@pytest.mark.parametrize("quantize", [None, "uint8", "uint16"])
def test_streaming_build_over_blocks_equals_one_build(medium, quantize):
    docs, queries = medium
    cuts = [0, 1, 700, 700, 2999, 3000]  # an empty block and a one-row block included
    blocks = [docs[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    whole = NumbaIndex.build(docs, quantize=quantize)
    streamed = NumbaIndex.build_streaming(lambda: iter(blocks), 400, quantize=quantize)
    assert streamed.scale == whole.scale and streamed.n_docs == whole.n_docs
    for name in ("offsets", "doc_ids", "weights"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name))
    assert_same(streamed.search(queries, 10), brute_force(docs, queries, 10, quantize))
    calls = iter([blocks, blocks[:-1]])
    with pytest.raises(DataError, match="blocks changed"):
        NumbaIndex.build_streaming(lambda: iter(next(calls)), 400)
    # the same rows with more postings on the second read (that nothing is written past a
    # list's end is test_scatter_postings_never_writes_past_a_list_end)
    denser = [b.copy() for b in blocks]
    denser[3] = (denser[3] + sp.random(*denser[3].shape, density=0.05, random_state=1)).tocsr()
    calls = iter([blocks, denser])
    with pytest.raises(DataError, match="blocks changed"):
        NumbaIndex.build_streaming(lambda: iter(next(calls)), 400)
    with pytest.raises(DataError, match="401 columns"):
        NumbaIndex.build_streaming(lambda: iter([sp.csr_matrix((2, 401), dtype=np.float32)]), 400)


def test_scatter_postings_never_writes_past_a_list_end():
    from irbench.index.kernels import scatter_postings

    rows = sp.csr_matrix(np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32))
    doc_ids = np.full(4, 9, dtype=np.uint32)
    weights = np.full(4, 9.0, dtype=np.float32)
    args = (rows.indptr, rows.indices, rows.data, 0, 2, 0)
    pos, end = np.array([0, 3]), np.array([2, 4])  # list 0 holds 2 postings, list 1 one
    assert scatter_postings(*args, pos, end, doc_ids, weights, 1.0, 0.0)
    assert doc_ids.tolist() == [0, 1, 9, 0] and weights.tolist() == [1, 3, 9, 2]
    pos, end = np.array([0, 3]), np.array([1, 4])  # list 0 too short for doc 1
    doc_ids[:] = 9
    assert not scatter_postings(*args, pos, end, doc_ids, weights, 1.0, 0.0)
    assert doc_ids.tolist() == [0, 9, 9, 0]


def test_search_restores_thread_count(medium):
    docs, queries = medium
    index = NumbaIndex.build(docs)
    before = numba.get_num_threads()
    index.search(queries, 5, threads=1)
    assert numba.get_num_threads() == before


def test_numba_threads_sets_and_restores():
    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with pytest.raises(RuntimeError), numba_threads(1):
        raise RuntimeError("restored on errors too")
    assert numba.get_num_threads() == before
    with numba_threads(None):
        assert numba.get_num_threads() == before


def test_resolve_threads_caps_at_numba_max():
    top = numba.config.NUMBA_NUM_THREADS
    assert resolve_threads(0) == resolve_threads(-3) == top
    assert resolve_threads(1) == 1
    assert resolve_threads(top + 5) == top


@pytest.mark.parametrize("quantize", [None, "uint8"])
@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, medium, quantize, mmap):
    docs, queries = medium
    index = NumbaIndex.build(docs, quantize=quantize)
    index.save(tmp_path / "idx")
    header = json.loads((tmp_path / "idx" / "header.json").read_text())
    assert header == {
        "type": "numba",
        "format": 1,
        "n_docs": 3000,
        "n_terms": 400,
        "nnz": index.nnz,
        "quantize": quantize,
        "scale": index.scale,
    }
    loaded = NumbaIndex.load(tmp_path / "idx", mmap=mmap)
    assert isinstance(loaded.doc_ids, np.memmap) == mmap
    assert loaded.size_bytes == index.size_bytes and loaded.scale == index.scale
    assert_same(loaded.search(queries, 30, threads=2), index.search(queries, 30, threads=1))
    via_registry = load_index(tmp_path / "idx")
    assert isinstance(via_registry, NumbaIndex)
    assert_same(via_registry.search(queries, 7), index.search(queries, 7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temp folders left


def test_save_replaces_atomically(tmp_path, medium):
    docs, queries = medium
    target = tmp_path / "idx"
    NumbaIndex.build(docs[:10]).save(target)
    index = NumbaIndex.build(docs)
    index.save(target)  # overwrite: the new one is in place, nothing else remains
    assert load_index(target).n_docs == 3000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:  # a crash mid-save
        (tmp / "partial").write_text("x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert_same(load_index(target).search(queries, 5), index.search(queries, 5))


@pytest.fixture
def saved(tmp_path, medium) -> Path:
    path = tmp_path / "idx"
    NumbaIndex.build(medium[0]).save(path)
    return path


def test_truncated_array_raises_cache_error(saved):
    blob = (saved / "doc_ids.npy").read_bytes()
    (saved / "doc_ids.npy").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CacheError, match="doc_ids.npy"):
        load_index(saved)
    with pytest.raises(CacheError, match="doc_ids.npy"):
        NumbaIndex.load(saved, mmap=False)


def test_header_mismatch_raises_cache_error(saved):
    header = read_header(saved)
    write_header(saved, {**header, "nnz": header["nnz"] + 1})
    with pytest.raises(CacheError, match="does not match the header"):
        load_index(saved)
    write_header(saved, {**header, "n_terms": header["n_terms"] - 1})
    with pytest.raises(CacheError, match="offsets.npy"):
        load_index(saved)
    write_header(saved, {k: v for k, v in header.items() if k != "n_docs"})
    with pytest.raises(CacheError, match="n_docs"):
        load_index(saved)
    write_header(saved, {**header, "format": 99})
    with pytest.raises(CacheError, match="format"):
        load_index(saved)
    write_header(saved, header)
    assert load_index(saved).nnz == header["nnz"]


def test_corrupt_offsets_raise_cache_error(saved):
    offsets = np.load(saved / "offsets.npy")
    offsets[1], offsets[2] = offsets[2] + 1, offsets[1]
    np.save(saved / "offsets.npy", offsets)
    with pytest.raises(CacheError, match="offsets"):
        load_index(saved)


def test_unknown_type_and_missing_files_raise_cache_error(saved, tmp_path):
    header = read_header(saved)
    write_header(saved, {**header, "type": "faiss-ivf"})
    with pytest.raises(CacheError, match="unknown index type 'faiss-ivf'"):
        load_index(saved)
    (saved / "header.json").write_text("{not json")
    with pytest.raises(CacheError, match="header.json"):
        load_index(saved)
    (saved / "header.json").unlink()
    with pytest.raises(CacheError, match="header missing"):
        load_index(saved)
    with pytest.raises(CacheError, match="not found"):
        load_index(tmp_path / "nowhere")
    write_header(saved, header)
    (saved / "weights.npy").unlink()
    with pytest.raises(CacheError, match="weights.npy"):
        load_index(saved)


def test_error_messages_are_one_line(saved):
    (saved / "offsets.npy").write_bytes(b"\x93NUMPY garbage\nmore\n")
    with pytest.raises(CacheError) as info:
        load_index(saved)
    assert "\n" not in str(info.value) and str(saved) in str(info.value)


@pytest.mark.parametrize("high", ["sampled", "unsampled"])
@pytest.mark.parametrize(("n", "k", "step"), [(6000, 375, 2), (20000, 1000, 9)])
def test_sampled_threshold_falls_back_when_the_sample_misleads(high, n, k, step):
    # k >= PARTITION_K on n docs scanned densely: the threshold comes from every
    # step = max(n // 8k, n // 2048)-th doc (at 20,000 docs and k = 1000 the 2,048-score
    # cap sets it). "sampled": the sample holds only the high scores, so too few docs reach
    # its threshold and all candidates are gathered instead; "unsampled": the sample sees
    # only low scores
    assert k >= numba_index.PARTITION_K
    rng = np.random.default_rng(3)
    on_step = np.arange(n) % step == 0
    is_high = on_step if high == "sampled" else ~on_step
    w = np.where(is_high, 2.0, 1.0) + rng.integers(0, 50, n) / 64
    docs = sp.csr_matrix((w.astype(np.float32), (np.arange(n), np.zeros(n, int))), shape=(n, 1))
    query = sp.csr_matrix(np.ones((1, 1), np.float32))
    index = NumbaIndex.build(docs)
    assert index.offsets[-1] > numba_index._touched_cap(n)  # the dense scan
    assert_same(index.search(query, k), brute_force(docs, query, k))


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 64, 1003])
@pytest.mark.parametrize("thr", [-np.inf, 0.0, "a score", 2.5, np.inf])
@pytest.mark.parametrize("scale", [1.0, 0.37])
def test_candidate_gathering_equals_numpy_on_every_path(n, thr, scale):
    # the compress-store path (any CPU: LLVM lowers it without AVX-512 too), the scalar
    # path and the dispatcher all return the docs a numpy mask picks, in doc order
    from irbench.index import kernels

    rng = np.random.default_rng(n)
    acc = rng.uniform(-1.0, 3.0, n).astype(np.float32)
    acc[rng.random(n) < 0.4] = 0.0  # untouched docs
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45], np.float32)
    acc[: min(n, 5)] = special[: min(n, 5)]  # NaN passes no test; -0.0 is untouched
    scale = np.float32(scale)
    s = acc * scale
    if thr == "a score":  # every 3rd doc scores exactly the threshold: they are candidates
        acc[::3] = np.float32(1.3)
        s = acc * scale
        thr = s[0] if n else 0.0
    thr = np.float32(thr)
    pick = np.flatnonzero((s >= thr) & (acc != 0))
    for gather in (
        kernels._gather,
        kernels._gather_simd,
        lambda *a: kernels._gather_scalar(*a, 0),
    ):
        cand_s = np.full(n + 32, -7.0, np.float32)  # the slots past n must stay untouched
        cand_d = np.full(n + 32, -7, np.int64)
        m = gather(acc, scale, thr, cand_s[:n], cand_d[:n])
        np.testing.assert_array_equal(cand_d[:m], pick)
        np.testing.assert_array_equal(cand_s[:m], s[pick])
        assert (cand_s[n:] == -7.0).all() and (cand_d[n:] == -7).all()


def test_radix_sort_from_the_high_half_is_stable():
    # keys whose high halves tie keep their input order: candidates gathered in doc order
    # need only their score bits sorted
    from irbench.index import kernels

    rng = np.random.default_rng(0)
    keys = (rng.integers(0, 5, 3000).astype(np.uint64) << np.uint64(32)) | rng.integers(
        0, 2**32, 3000
    ).astype(np.uint64)
    want = keys[np.argsort(keys >> np.uint64(32), kind="stable")]
    got = keys.copy()
    kernels._radix_sort(got, 32)
    np.testing.assert_array_equal(got, want)
    full = keys.copy()
    kernels._radix_sort(full, 0)
    np.testing.assert_array_equal(full, np.sort(keys))


def test_save_never_replaces_a_folder_or_file_that_is_not_an_index(tmp_path):
    index = NumbaIndex.build(sp.random(10, 5, density=0.5, format="csr", dtype=np.float32))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not an index folder"):
        index.save(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    with pytest.raises(ConfigError):
        index.save(a_file)
    assert a_file.read_text() == "keep"
    index.save(tmp_path / "ix")  # new, then over itself: fine
    index.save(tmp_path / "ix")
    (tmp_path / "empty").mkdir()
    index.save(tmp_path / "empty")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_data_errors_in_every_index(bad):
    from irbench.errors import DataError
    from irbench.index.approx import ApproxIndex
    from irbench.index.faiss import FaissIndex

    rng = np.random.default_rng(0)
    docs = sp.random(50, 20, density=0.3, format="csr", dtype=np.float32, random_state=1)
    broken = docs.copy()
    broken.data[3] = bad
    for build in (NumbaIndex.build, lambda d: NumbaIndex.build(d, quantize="uint8"),
                  ApproxIndex.build):  # fmt: skip
        with pytest.raises(DataError, match="NaN or infinite"):
            build(broken)
        index = build(docs)
        with pytest.raises(DataError, match="NaN or infinite"):
            index.search(broken[:5], 3)
    dense = rng.standard_normal((50, 8)).astype(np.float32)
    with pytest.raises(DataError, match="NaN or infinite"):
        FaissIndex.build(np.where(np.arange(8) == 2, bad, dense).astype(np.float32))
    with pytest.raises(DataError, match="NaN or infinite"):
        FaissIndex.build(dense).search(np.full((1, 8), bad, np.float32), 3)


def test_finite_weights_whose_products_overflow_are_a_data_error():
    """inf - inf is NaN, which no order ranks (it sat at a different rank for each k)."""
    from irbench.errors import DataError

    docs = sp.csr_matrix(
        np.array([[3e38, 3e38, 0], [1, 0, 0], [3e38, 0, 0], [0, 0, 1]], np.float32)
    )
    query = sp.csr_matrix(np.array([[2.0, -2.0, 0.0]], np.float32))
    for k in (1, 4, 20):
        with pytest.raises(DataError, match="overflow float32"):
            NumbaIndex.build(docs).search(query, k)
    positive = sp.csr_matrix(np.array([[2.0, 0, 0]], np.float32))  # +inf: refused as well
    with pytest.raises(DataError, match="overflow float32"):
        NumbaIndex.build(docs).search(positive, 3)
    s, d = NumbaIndex.build(docs).search(sp.csr_matrix(np.array([[0, 0, 1.0]], np.float32)), 3)
    assert list(d[0]) == [3, -1, -1] and np.isneginf(s[0, 1:]).all()  # padding is fine


def test_a_misspelled_build_option_is_an_error_not_ignored():
    """`n_posting=0` must not quietly build a pruned index for a user who asked for an exact
    one (the builds took **kwargs and dropped unknown ones)."""
    from irbench.index.approx import ApproxIndex
    from irbench.index.faiss import FaissIndex

    docs = sp.random(30, 10, density=0.3, format="csr", dtype=np.float32, random_state=0)
    with pytest.raises(TypeError, match="n_posting"):
        ApproxIndex.build(docs, n_posting=0)
    with pytest.raises(TypeError, match="quantise"):
        NumbaIndex.build(docs, quantise="uint8")
    with pytest.raises(TypeError, match="factori"):
        FaissIndex.build(np.ones((5, 4), np.float32), factori="HNSW8")
    NumbaIndex.build(docs, name="numba")  # the config's own name key is accepted
