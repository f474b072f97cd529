"""ApproxIndex (index=numba_approx): exact scores, exactness without pruning, recall, I/O."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irbench.errors import CacheError, ConfigError, DataError
from irbench.index import load_index
from irbench.index.approx import (
    MIN_MAX_WEIGHT,
    ApproxIndex,
    default_n_postings,
    global_threshold,
    pack_layout,
)
from irbench.index.approx_kernels import (
    EPS,
    _dot_bound,
    append_positive,
    kth_smallest_positive,
    pack_forward,
)
from irbench.index.numba import NumbaIndex
from tests.test_index_numba import DOC_POOLS, assert_same, brute_force, random_csr

# query weights > 0 only: the approximate index ignores entries <= 0
POSITIVE_QUERY_POOLS = [
    np.array([1.0], np.float32),
    np.array([1.0, 2.0, 0.5], np.float32),
    np.array([1e-25, 1e-12, 2.0], np.float32),  # products underflow to 0
    None,
]
EXACT = {"n_postings": 0, "query_cut": 0, "summary_energy": 1.0, "heap_factor": 1.0}


def clustered(rng, n_docs, n_terms, n_topics=20, topic_terms=30, nnz=40, n_queries=40):
    """Docs and queries drawn from topics: most mass on the topic's terms, some background."""
    topics = [rng.choice(n_terms, topic_terms, replace=False) for _ in range(n_topics)]

    def draw(n_rows, n_nnz):
        rows, cols, vals = [], [], []
        for i in range(n_rows):
            t = topics[rng.integers(n_topics)]
            c = np.unique(
                np.concatenate([rng.choice(t, n_nnz // 2), rng.integers(0, n_terms, n_nnz // 2)])
            )
            w = rng.gamma(2.0, 0.5, len(c)) * np.where(np.isin(c, t), 3.0, 1.0)
            rows.append(np.full(len(c), i))
            cols.append(c)
            vals.append(w.astype(np.float32) + np.float32(0.01))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_rows, n_terms),
        )

    return draw(n_docs, nnz), draw(n_queries, 12)


def exact_dot(docs: sp.csr_matrix, d: int, qdense: np.ndarray) -> np.float32:
    """float32 sum over the doc's terms in ascending id of f32(q[t]) * w."""
    s = np.float32(0.0)
    a, b = docs.indptr[d], docs.indptr[d + 1]
    for t, w in zip(docs.indices[a:b], docs.data[a:b], strict=True):
        if w > 0 and qdense[t] > 0:
            s = np.float32(s + np.float32(qdense[t]) * np.float32(w))
    return s


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(e[e >= 0])) / max((e >= 0).sum(), 1)
                          for f, e in zip(found, exact, strict=True)]))  # fmt: skip


@pytest.fixture(scope="module")
def topical():
    rng = np.random.default_rng(7)
    docs, queries = clustered(rng, 3000, 1500)
    docs.sort_indices()
    return docs, queries


@pytest.fixture(scope="module")
def pruned(topical):
    docs, _ = topical
    return ApproxIndex.build(docs, n_postings=150, summary_energy=0.4, query_cut=5, heap_factor=0.9)


# ------------------------------------------------------------------------------- scores


def test_returned_scores_are_exact_dot_products(topical, pruned):
    docs, queries = topical
    scores, idx = pruned.search(queries, 10, threads=1)
    q = queries.toarray().astype(np.float32)
    checked = 0
    for i in range(queries.shape[0]):
        for s, d in zip(scores[i], idx[i], strict=True):
            if d < 0:
                assert s == -np.inf
                continue
            assert s == exact_dot(docs, int(d), q[i])
            checked += 1
        valid = idx[i][idx[i] >= 0]
        assert len(set(valid.tolist())) == len(valid)  # no doc twice
        # best first, ties by doc index
        order = np.lexsort((valid, -scores[i][: len(valid)]))
        np.testing.assert_array_equal(order, np.arange(len(valid)))
    assert checked > 0


def test_scores_bit_identical_to_exact_index(topical, pruned):
    docs, queries = topical
    exact = NumbaIndex.build(docs)
    s, d = pruned.search(queries, 10, threads=2)
    es, ed = exact.search(queries, 10, threads=2)
    for i in range(queries.shape[0]):
        got = dict(zip(d[i].tolist(), s[i].tolist(), strict=True))
        ref = dict(zip(ed[i].tolist(), es[i].tolist(), strict=True))
        for doc in set(got) & set(ref):
            assert got[doc] == ref[doc]


# ------------------------------------------------------------------------ exactness / recall


case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n_docs": st.integers(0, 120),
        "n_terms": st.integers(0, 20),
        "extra_cols": st.integers(0, 3),
        "n_queries": st.integers(0, 6),
        "doc_density": st.sampled_from([0.0, 0.1, 0.3, 0.8]),
        "query_density": st.sampled_from([0.0, 0.2, 0.5, 1.0]),
        "doc_pool": st.integers(0, len(DOC_POOLS) - 1),
        "query_pool": st.integers(0, len(POSITIVE_QUERY_POOLS) - 1),
        "k": st.integers(0, 30),
        "centroid_fraction": st.sampled_from([0.05, 0.3, 1.0]),
        "cluster_terms": st.sampled_from([1, 3, 16]),
        "doc_cut": st.sampled_from([0, 1, 2]),
        "sorted_terms": st.sampled_from([0, 1, 2, 50]),
    }
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case)
def test_no_pruning_equals_brute_force(c):
    """n_postings 0 (all), query_cut 0 (all), summary_energy 1, heap_factor 1: exact."""
    rng = np.random.default_rng(c["seed"])
    docs = random_csr(rng, c["n_docs"], c["n_terms"], c["doc_density"], DOC_POOLS[c["doc_pool"]])
    queries = random_csr(
        rng, c["n_queries"], c["n_terms"], c["query_density"],
        POSITIVE_QUERY_POOLS[c["query_pool"]], extra_cols=c["extra_cols"],
    )  # fmt: skip
    build = dict(centroid_fraction=c["centroid_fraction"], cluster_terms=c["cluster_terms"],
                 doc_cut=c["doc_cut"], **EXACT)  # fmt: skip
    top = float(docs.data.max(initial=0.0))
    if 0 < top < MIN_MAX_WEIGHT:  # only tiny weights: refused, not searched inexactly
        with pytest.raises(DataError, match="rescale the vectors"):
            ApproxIndex.build(docs, **build)
        return
    index = ApproxIndex.build(docs, **build)
    want = brute_force(docs, queries, c["k"])
    assert_same(index.search(queries, c["k"], threads=1, sorted_terms=c["sorted_terms"]), want)
    assert_same(index.search(queries, c["k"], threads=2, sorted_terms=c["sorted_terms"]), want)


def test_exact_settings_on_topical_data(topical):
    docs, queries = topical
    index = ApproxIndex.build(docs, **EXACT)
    for k in (1, 10, 100):
        want = brute_force(docs, queries, k)
        for sorted_terms in (0, 1, 3, 100):  # stored order, best first, and mixed
            assert_same(index.search(queries, k, threads=2, sorted_terms=sorted_terms), want)


def test_lower_heap_factor_is_still_exact(topical):
    docs, queries = topical
    index = ApproxIndex.build(docs, **{**EXACT, "heap_factor": 0.5})
    assert_same(index.search(queries, 10), brute_force(docs, queries, 10))


def test_recall_high_with_generous_knobs(topical):
    docs, queries = topical
    exact = brute_force(docs, queries, 10)[1]
    index = ApproxIndex.build(docs, n_postings=400, summary_energy=0.6)
    found = index.search(queries, 10, query_cut=8, heap_factor=0.8)[1]
    assert recall(found, exact) >= 0.95


def test_more_aggressive_settings_cost_recall(topical, pruned):
    docs, queries = topical
    exact = brute_force(docs, queries, 10)[1]
    tight = recall(pruned.search(queries, 10, query_cut=1, heap_factor=2.0)[1], exact)
    loose = recall(pruned.search(queries, 10, query_cut=12, heap_factor=0.7)[1], exact)
    assert tight < loose


def test_sorted_terms_counts_traversed_terms(topical, pruned):
    """``sorted_terms`` = how many of the traversed terms (heaviest first) visit their blocks
    best first: at least ``query_cut`` of them is "all", and with lossy settings the order
    changes which docs are found (so the knob is not ignored)."""
    _, queries = topical
    for cut in (1, 3):
        knobs = {"query_cut": cut, "heap_factor": 1.5}
        every = pruned.search(queries, 10, sorted_terms=100, **knobs)
        assert_same(pruned.search(queries, 10, sorted_terms=cut, **knobs), every)
        stored = pruned.search(queries, 10, sorted_terms=0, **knobs)
        assert not np.array_equal(stored[1], every[1])


# ----------------------------------------------------------------- threads, determinism


def test_results_do_not_depend_on_thread_count(topical, pruned):
    _, queries = topical
    one = pruned.search(queries, 20, threads=1)
    two = pruned.search(queries, 20, threads=2)
    assert_same(two, one)
    assert_same(pruned.search(queries, 20, threads=1), one)  # reused scratch buffers


@pytest.mark.parametrize("knobs", [{"n_postings": 100}, {"n_postings": 0, "summary_energy": 1.0}])
def test_build_does_not_depend_on_thread_count(topical, knobs):
    """The second case keeps every posting and summary entry: each worker's summary
    buffers (64k entries at first) must grow several times. (Numba caps the thread count
    at the cores; other worker counts: test_summaries_in_one_pass_equal_for_any_worker_count.)"""
    docs, _ = topical
    a = ApproxIndex.build(docs, threads=1, **knobs)
    if knobs["n_postings"] == 0:
        assert len(a.arrays["ent_val"]) > 4 * 2**16
    b = ApproxIndex.build(docs, threads=2, **knobs)
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)


def test_streaming_build_equals_build_on_the_concatenation(topical):
    """Blocks read twice, non-canonical (unsorted, duplicates, zeros and negatives, a
    float64 block, an empty one): the same layout as one build on their stack."""
    docs, _ = topical
    rng = np.random.default_rng(7)
    noisy = docs.tocoo()
    extra = sp.coo_matrix(
        (rng.uniform(-0.5, 1.0, 500), (rng.integers(0, docs.shape[0], 500),
         rng.integers(0, docs.shape[1], 500))), shape=docs.shape,
    )  # fmt: skip
    whole = sp.csr_matrix(
        (np.concatenate([noisy.data, extra.data]).astype(np.float32),
         (np.concatenate([noisy.row, extra.row]), np.concatenate([noisy.col, extra.col]))),
        shape=docs.shape,
    )  # fmt: skip
    cuts = [0, 37, 37, 150, docs.shape[0]]
    parts = [whole[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    parts[2] = parts[2].astype(np.float64)

    def blocks():
        for part in parts:  # scipy coalesces duplicates on slicing: make some again
            m = part.tocoo()
            yield (
                sp.csr_matrix(
                    (np.r_[m.data / 2, m.data / 2], (np.r_[m.row, m.row], np.r_[m.col, m.col])),
                    shape=m.shape,
                )
                if m.nnz
                else part
            )

    knobs = {"n_postings": 60, "threads": 1}
    got = ApproxIndex.build_streaming(blocks, docs.shape[1], **knobs)
    want = ApproxIndex.build(sp.vstack(list(blocks()), format="csr"), **knobs)
    assert got.n_docs == docs.shape[0] and got.nnz == want.nnz
    for name in want.arrays:
        np.testing.assert_array_equal(got.arrays[name], want.arrays[name], err_msg=name)
    assert float(got.arrays["fwd_data"].min()) > 0


def test_streaming_build_rejects_blocks_that_change(topical):
    docs, _ = topical
    calls = []

    def blocks():
        calls.append(1)
        return iter([docs[:50], docs[50:]] if len(calls) == 1 else [docs[:50], docs[49:]])

    with pytest.raises(DataError, match="blocks changed"):
        ApproxIndex.build_streaming(blocks, docs.shape[1])
    with pytest.raises(DataError, match="columns"):
        ApproxIndex.build_streaming(lambda: iter([docs]), docs.shape[1] - 1)
    # the same rows, more entries on the second read (the copy's own stop:
    # test_append_positive_never_writes_past_its_stop)
    denser = docs.copy()
    denser.data[:] = 1.0
    denser = (denser + sp.random(*docs.shape, density=0.05, format="csr", random_state=1)).tocsr()
    reads = iter([[docs], [denser]])
    with pytest.raises(DataError, match="blocks changed"):
        ApproxIndex.build_streaming(lambda: iter(next(reads)), docs.shape[1])


def test_streaming_build_rejects_term_ids_outside_the_matrix():
    bad = sp.csr_matrix(
        (np.ones(2, np.float32), np.array([1, 7], np.int32), np.array([0, 1, 2])), shape=(2, 5)
    )  # scipy does not check the ids of a matrix built from its arrays
    for build in (ApproxIndex.build, NumbaIndex.build):
        with pytest.raises(DataError, match=r"term ids outside \[0, 5\)"):
            build(bad)


@pytest.mark.parametrize("energy", [0.4, 1.0])
def test_summaries_in_one_pass_equal_for_any_worker_count(energy):
    """``_summaries`` on its own (not capped by Numba's thread count): 1, 2, 3 and 5 worker
    threads give the same arrays, with empty blocks, more workers than some strides, tied
    weights and buffers that must grow; at energy 1.0 each summary is the block's
    component-wise max over all its terms, quantised up against the block's max."""
    from irbench.index.approx import SLACK, _summaries

    rng = np.random.default_rng(3)
    fwd = sp.random(600, 3000, density=0.08, format="csr", random_state=rng, dtype=np.float32)
    fwd.data = rng.integers(1, 9, fwd.nnz).astype(np.float32)  # ties
    sizes = rng.integers(0, 40, 250)
    sizes[[0, 5, 6, 249]] = 0  # empty blocks, the last one included
    blk_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blk_docs = rng.integers(0, 600, int(blk_ptr[-1])).astype(np.uint32)
    args = (
        fwd.indptr.astype(np.int64),
        fwd.indices.astype(np.uint16),
        fwd.data,
        blk_ptr,
        blk_docs,
        3000,
        energy,
    )
    one = _summaries(*args, 1)
    assert one[0][-1] > 2 * 2**16  # the single worker's buffers grew (from 2**16)
    for workers in (2, 3, 5):
        for a, b in zip(one, _summaries(*args, workers), strict=True):
            np.testing.assert_array_equal(a, b)
    if energy == 1.0:
        sum_ptr, terms, vals, scale = one
        for blk in range(len(sizes)):
            rows = fwd[blk_docs[blk_ptr[blk] : blk_ptr[blk + 1]].astype(np.int64)]
            mx = np.asarray(rows.max(axis=0).todense()).ravel() if rows.shape[0] else np.zeros(3000)
            want_terms = np.flatnonzero(mx)
            got = slice(sum_ptr[blk], sum_ptr[blk + 1])
            np.testing.assert_array_equal(terms[got], want_terms)
            if len(want_terms):
                unit = np.float64(mx.max()) / 255.0
                want_vals = np.clip(np.ceil(mx[want_terms] / unit), 1, 255)
                np.testing.assert_array_equal(vals[got], want_vals)
                assert scale[blk] == np.float32(unit * SLACK)
            else:
                assert scale[blk] == 0


def test_append_positive_never_writes_past_its_stop():
    block = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 3.0]], dtype=np.float32))
    ind = np.full(5, 7, dtype=np.int32)
    val = np.full(5, 7.0, dtype=np.float32)
    assert append_positive(block.indptr, block.indices, block.data, 1, 4, ind, val) == 4
    assert ind.tolist() == [7, 0, 2, 2, 7] and val.tolist() == [7, 1, 2, 3, 7]
    assert append_positive(block.indptr, block.indices, block.data, 2, 4, ind, val) == -1
    assert ind[4] == 7 and val[4] == 7.0  # nothing past the stop


def test_doc_cut_steers_the_clustering(topical):
    """Docs join a centroid by their heaviest doc_cut terms: fewer terms, other blocks (same
    kept postings); 0 and any value >= cluster_terms use the whole sketch."""
    docs, _ = topical
    full = ApproxIndex.build(docs, n_postings=100, cluster_terms=16, doc_cut=0)
    same = ApproxIndex.build(docs, n_postings=100, cluster_terms=16, doc_cut=16)
    cut = ApproxIndex.build(docs, n_postings=100, cluster_terms=16, doc_cut=2)
    np.testing.assert_array_equal(same.arrays["blk_docs"], full.arrays["blk_docs"])
    assert not np.array_equal(cut.arrays["blk_docs"], full.arrays["blk_docs"])
    assert cut.n_kept_postings == full.n_kept_postings


def test_single_queries_match_batch(topical, pruned):
    _, queries = topical
    s, d = pruned.search(queries, 10)
    for i in (0, 5, 17):
        si, di = pruned.search(queries[i : i + 1], 10)
        np.testing.assert_array_equal(di[0], d[i])
        np.testing.assert_array_equal(si[0], s[i])


# -------------------------------------------------------------------------- knobs, edges


def test_default_n_postings_scales_with_collection():
    assert default_n_postings(0) == 64
    assert default_n_postings(32_000) == 447
    assert default_n_postings(1_000_000) == 2500
    assert default_n_postings(4_000_000) == 2 * default_n_postings(1_000_000)


def test_static_pruning_keeps_highest_weights(topical):
    docs, _ = topical
    index = ApproxIndex.build(docs, n_postings=20, pruning="fixed")
    a = index.arrays
    csc = sp.csc_matrix(docs)
    for t in (0, 3, 99):
        kept = []
        for blk in range(a["term_blocks"][t], a["term_blocks"][t + 1]):
            kept.extend(a["blk_docs"][a["blk_ptr"][blk] : a["blk_ptr"][blk + 1]].tolist())
        col = csc.getcol(t)
        w = dict(zip(col.indices.tolist(), col.data.tolist(), strict=True))
        assert len(kept) == min(20, len(w)) == len(set(kept))
        if len(w) > 20:
            cutoff = sorted(w.values(), reverse=True)[19]
            assert min(w[d] for d in kept) >= cutoff


def test_global_pruning_spends_the_budget_on_the_highest_weights(topical):
    docs, _ = topical
    index = ApproxIndex.build(docs, n_postings=20, max_fraction=1.5)
    a = index.arrays
    per_term = kept_per_term(index, docs.shape[1])
    df = np.diff(sp.csc_matrix(docs).indptr)
    assert per_term.max() <= 30 and per_term.sum() <= 20 * (df > 0).sum()
    assert (per_term > 20).any()  # long lists get more than the average
    # one global weight cut: every kept posting outweighs every dropped one (uncapped lists)
    csc = sp.csc_matrix(docs)
    kept_w, dropped_w = [], []
    for t in range(docs.shape[1]):
        if per_term[t] == 30 or df[t] == 0:
            continue
        blocks = range(a["term_blocks"][t], a["term_blocks"][t + 1])
        keep = {
            int(d) for b in blocks for d in a["blk_docs"][a["blk_ptr"][b] : a["blk_ptr"][b + 1]]
        }
        col = csc.getcol(t)
        for d, w in zip(col.indices.tolist(), col.data.tolist(), strict=True):
            (kept_w if d in keep else dropped_w).append(w)
    assert min(kept_w) >= max(dropped_w)


def kept_per_term(index, n_terms):
    """Postings each term keeps in a built index (the sizes of its blocks)."""
    a = index.arrays
    per_block = np.diff(a["blk_ptr"])
    per_term = np.add.reduceat(np.r_[per_block, 0], a["term_blocks"][:-1])[:n_terms]
    per_term[np.diff(a["term_blocks"]) == 0] = 0
    return per_term


def kept_counts(m, n_postings, max_fraction):
    """Per-term kept postings of the index built from the term-major matrix ``m`` with global
    pruning; the threshold alone also checked on the weights in a shuffled order (the cut
    must not depend on it)."""
    index = ApproxIndex.build(m.tocsr(), n_postings=n_postings, max_fraction=max_fraction)
    got = kept_per_term(index, m.shape[1])
    df = np.diff(m.indptr)
    tau = global_threshold(
        np.random.default_rng(0).permutation(m.data), int((df > 0).sum()), n_postings
    )
    cap = max(1, int(max_fraction * n_postings))
    from_tau = [
        min(cap, int((m.data[a:b] >= tau).sum()))
        for a, b in zip(m.indptr[:-1], m.indptr[1:], strict=True)
    ]
    np.testing.assert_array_equal(got, from_tau)
    return got


@pytest.mark.parametrize("seed", range(6))
def test_kth_smallest_positive_matches_a_sort(seed):
    """Radix selection on float32 bit patterns: positive values over many magnitudes,
    ties, subnormals and inf."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    x = (10.0 ** rng.uniform(-40, 38, n)).astype(np.float32)
    x[rng.random(n) < 0.3] = np.float32(rng.choice([1.0, 0.5, np.inf, 1e-45]))
    x = x[x > 0]
    ref = np.sort(x)
    for k in {0, len(x) // 3, len(x) - 1, int(rng.integers(0, len(x)))}:
        assert kth_smallest_positive(x, k) == ref[k]


@pytest.mark.parametrize("n_postings", [3, 8, 40])
def test_global_pruning_matches_seismic_rule(n_postings):
    """Reference: the budget's worth of globally largest weights, then each term capped."""
    rng = np.random.default_rng(n_postings)
    m = sp.random(400, 60, density=0.2, format="csc", random_state=rng, dtype=np.float32)
    m.data = rng.permutation(len(m.data)).astype(np.float32) + 1  # distinct weights
    offsets, weights = m.indptr.astype(np.int64), m.data
    df = np.diff(offsets)
    budget = n_postings * int((df > 0).sum())
    cap = int(1.5 * n_postings)
    top = np.sort(weights)[::-1][:budget]
    want = np.array([min(cap, int((weights[a:b] >= top[-1]).sum()))
                     for a, b in zip(offsets[:-1], offsets[1:], strict=True)])  # fmt: skip
    got = kept_counts(m, n_postings, 1.5)
    np.testing.assert_array_equal(got, want)
    if df.sum() > budget:
        assert got.sum() <= budget


@pytest.mark.parametrize("n_postings", [1, 3, 8, 40])
def test_global_pruning_with_tied_weights(n_postings):
    """Ties at the cut are kept or dropped together: the kept set is every weight >= the
    smallest value whose count fits the budget (all of the largest if none does)."""
    rng = np.random.default_rng(100 + n_postings)
    m = sp.random(300, 50, density=0.3, format="csc", random_state=rng, dtype=np.float32)
    m.data = rng.integers(1, 7, len(m.data)).astype(np.float32)  # six values: many ties
    offsets, weights = m.indptr.astype(np.int64), m.data
    df = np.diff(offsets)
    budget = n_postings * int((df > 0).sum())
    fits = [u for u in np.unique(weights) if (weights >= u).sum() <= budget]
    cut = min(fits) if fits else weights.max()
    want = np.array([min(int(1.5 * n_postings), int((weights[a:b] >= cut).sum()))
                     for a, b in zip(offsets[:-1], offsets[1:], strict=True)])  # fmt: skip
    np.testing.assert_array_equal(kept_counts(m, n_postings, 1.5), want)


@pytest.mark.parametrize("n_terms", [1, 2, 1500, 30522, 2**16 + 1, 2**24])
def test_packed_rows_hold_the_term_and_a_weight_rounded_up(n_terms):
    rng = np.random.default_rng(n_terms)
    terms = rng.integers(0, n_terms, 5000).astype(np.int64)
    terms[:2] = [0, n_terms - 1]
    w = (rng.gamma(1.0, 1.0, 5000) + 1e-6).astype(np.float32)
    w[2] = w.max() * 2  # the largest weight: the top of the value range
    shift, scale = pack_layout(n_terms, float(w.max()))
    assert 32 - shift == max(1, (n_terms - 1).bit_length())
    out = np.empty(len(w), np.uint32)
    pack_forward(terms, w, shift, scale, out)
    np.testing.assert_array_equal(out >> np.uint32(shift), terms)
    value = (out & np.uint32((1 << shift) - 1)).astype(np.float64) * scale
    assert (value >= w).all() and (value - w <= scale * (1 + 1e-9)).all()


@pytest.mark.parametrize("seed", range(4))
def test_the_row_filter_never_falls_below_the_exact_score(seed):
    """The search skips a doc when its packed-row sum (any summation order), times the margin,
    is below the k-th score: that product must reach the doc's exact float32 score (the serial
    sum in term order), for long rows of mixed magnitudes too."""
    rng = np.random.default_rng(seed)
    n_terms = 30522
    qdense = np.zeros(n_terms, np.float32)
    qterms = rng.choice(n_terms, 400, replace=False)
    qdense[qterms] = rng.gamma(0.5, 2.0, 400).astype(np.float32)
    for n in (1, 3, 17, 256, 5000):
        # the query's terms and others (zero products), sorted: a doc row
        ours = rng.choice(qterms, min(n, 200), replace=False)
        terms = np.unique(np.concatenate([ours, rng.choice(n_terms, n - len(ours))]))
        w = rng.gamma(0.3, 1.0, len(terms)) * 10.0 ** rng.integers(-3, 2, len(terms))
        w = np.maximum(w, 1e-6).astype(np.float32)
        shift, scale = pack_layout(n_terms, float(w.max()))
        pack = np.empty(len(w), np.uint32)
        pack_forward(terms.astype(np.int64), w, shift, scale, pack)
        exact = np.add.accumulate(qdense[terms] * w, dtype=np.float32)[-1]  # serial, in order
        pscale = np.float32(scale * (1.0 + 1e-5))  # as ApproxIndex.search passes it
        bound = np.float32(_dot_bound(qdense, pack, np.uint32(shift), 0, len(w)) * pscale)
        assert bound * (np.float32(1.0) + np.float32(len(w)) * EPS) >= exact
        # and it is the sum of the packed values (not some larger number), to float32 rounding
        value = (pack & np.uint32((1 << shift) - 1)).astype(np.float64) * pscale
        ref = float(np.dot(qdense[terms].astype(np.float64), value))
        assert abs(float(bound) - ref) <= (len(w) + 2) * 2.0**-24 * ref
        # the summation alone: packed values that are exact (no rounding up to hide behind),
        # against the serial float32 sum of the same products (fails with EPS = 0)
        v = rng.integers(1, 2**shift, len(terms)).astype(np.uint32)
        raw = (terms.astype(np.uint32) << np.uint32(shift)) | v
        serial = np.add.accumulate(qdense[terms] * v.astype(np.float32), dtype=np.float32)[-1]
        got = _dot_bound(qdense, raw, np.uint32(shift), 0, len(v))
        assert got * (np.float32(1.0) + np.float32(len(v)) * EPS) >= serial


def test_too_large_vocabulary_is_a_config_error():
    with pytest.raises(ConfigError, match="terms"):
        pack_layout(2**24 + 1, 1.0)


def test_tiny_weights_are_refused_or_searched_exactly():
    """Below MIN_MAX_WEIGHT the float32 bound units turn subnormal and a bound fell below a
    doc's score (1-2 of 30 rows differed from exact under the exactness settings)."""
    from irbench.index.approx import MIN_MAX_WEIGHT

    rng = np.random.default_rng(3)
    docs, queries = clustered(rng, 600, 200, nnz=20, n_queries=30)
    with pytest.raises(DataError, match="rescale the vectors"):
        ApproxIndex.build(docs * np.float32(MIN_MAX_WEIGHT / 10 / docs.data.max()))
    small = (docs * np.float32(MIN_MAX_WEIGHT * 10 / docs.data.max())).tocsr()
    got = ApproxIndex.build(small, **EXACT).search(queries, 10)
    want = NumbaIndex.build(small).search(queries, 10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("scale", [2.0**-149 * 3, 2.0**-130, 2.0**-110])
def test_subnormal_scores_are_searched_exactly(scale):
    """Query weights this small make the products subnormal, whose float32 rounding errors are
    absolute, which the relative margins of the row filter and of the summaries do not cover:
    the search prunes nothing below MIN_PRUNE_SCORE (a wrong top 2 before it did)."""
    rng = np.random.default_rng(11)
    docs, queries = clustered(rng, 400, 120, nnz=20, n_queries=25)
    tiny = queries.copy()
    tiny.data = np.maximum(tiny.data / tiny.data.max() * np.float32(scale), 2.0**-149)
    tiny.data = tiny.data.astype(np.float32)
    got = ApproxIndex.build(docs, **EXACT).search(tiny, 10)
    want = NumbaIndex.build(docs).search(tiny, 10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_empty_inputs_and_bad_knobs():
    docs = sp.csr_matrix((4, 6), dtype=np.float32)
    index = ApproxIndex.build(docs)
    s, d = index.search(sp.csr_matrix(np.ones((2, 6), np.float32)), 3)
    assert (d == -1).all() and np.isneginf(s).all()
    assert index.search(sp.csr_matrix((0, 6), dtype=np.float32), 3)[0].shape == (0, 3)
    ones = sp.csr_matrix(np.ones((3, 6), np.float32))
    full = ApproxIndex.build(ones)
    assert full.search(ones, 0)[0].shape == (3, 0)
    for bad in (
        {"centroid_fraction": 0.0},
        {"summary_energy": 1.5},
        {"n_postings": -1},
        {"cluster_terms": 0},
        {"heap_factor": 0.0},
        {"pruning": "nope"},
        {"max_fraction": 0.5},
        {"sorted_terms": -1},
        {"doc_cut": -1},
    ):
        with pytest.raises(ConfigError):
            ApproxIndex.build(ones, **bad)
    with pytest.raises(ConfigError):
        full.search(ones, 2, query_cut=-1)
    with pytest.raises(ConfigError, match="sorted_terms"):
        full.search(ones, 2, sorted_terms=-2)
    with pytest.raises(ConfigError):
        full.search(ones, -1)
    for knob in ({"query_cut": 2.7}, {"sorted_terms": True}, {"heap_factor": "0.9"}):
        with pytest.raises(ConfigError, match=f"index.{next(iter(knob))}="):
            full.search(ones, 2, **knob)
        with pytest.raises(ConfigError, match=f"index.{next(iter(knob))}="):
            full.configure(**knob)
    for knob in ({"n_postings": 2.5}, {"max_fraction": float("inf")}, {"cluster_terms": "8"}):
        with pytest.raises(ConfigError, match=f"index.{next(iter(knob))}="):
            ApproxIndex.build(ones, **knob)
    full.configure(query_cut=np.int64(3), heap_factor=1)  # numpy ints and int factors are fine
    assert full.cfg["query_cut"] == 3 and full.cfg["heap_factor"] == 1.0
    for search in (full.search, full.exact_search):
        with pytest.raises(ConfigError, match="k must be a non-negative integer"):
            search(ones, 2.5)


def test_negative_and_zero_query_weights_are_ignored():
    docs = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    index = ApproxIndex.build(docs, **EXACT)
    q = sp.csr_matrix(np.array([[2.0, -1.0]], np.float32))
    s, d = index.search(q, 2)
    assert d.tolist() == [[0, -1]] and s[0, 0] == 2.0


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, topical, pruned, mmap):
    _, queries = topical
    pruned.save(tmp_path / "ix")
    header = json.loads((tmp_path / "ix" / "header.json").read_text())
    assert header["type"] == "numba_approx"
    loaded = ApproxIndex.load(tmp_path / "ix", mmap=mmap)
    assert isinstance(loaded.arrays["fwd_data"], np.memmap) == mmap
    assert loaded.cfg == pruned.cfg
    assert_same(loaded.search(queries, 15, threads=2), pruned.search(queries, 15, threads=1))
    via_registry = load_index(tmp_path / "ix")
    assert isinstance(via_registry, ApproxIndex)
    assert via_registry.size_bytes == pruned.size_bytes
    # a folder written before doc_cut existed was clustered on whole sketches
    header["config"].pop("doc_cut")
    (tmp_path / "ix" / "header.json").write_text(json.dumps(header))
    assert ApproxIndex.load(tmp_path / "ix", mmap=mmap).cfg["doc_cut"] == 0


def test_load_rejects_damaged_folders(tmp_path, pruned):
    pruned.save(tmp_path / "ix")
    (tmp_path / "ix" / "ent_val.npy").write_bytes(b"garbage")
    with pytest.raises(CacheError, match="ent_val"):
        ApproxIndex.load(tmp_path / "ix")
    pruned.save(tmp_path / "ix")
    header = json.loads((tmp_path / "ix" / "header.json").read_text())
    header["n_blocks"] += 1
    (tmp_path / "ix" / "header.json").write_text(json.dumps(header))
    with pytest.raises(CacheError, match="does not match"):
        ApproxIndex.load(tmp_path / "ix")
    header["format"] = 99
    (tmp_path / "ix" / "header.json").write_text(json.dumps(header))
    with pytest.raises(CacheError, match="format"):
        ApproxIndex.load(tmp_path / "ix")
    pruned.save(tmp_path / "ix")
    header = json.loads((tmp_path / "ix" / "header.json").read_text())
    del header["config"]["pack_scale"]
    (tmp_path / "ix" / "header.json").write_text(json.dumps(header))
    with pytest.raises(CacheError, match="pack_scale"):
        ApproxIndex.load(tmp_path / "ix")


def test_config_builds_through_hydra(topical):
    from irbench.config import compose, instantiate

    docs, queries = topical
    cfg = compose(["index=numba_approx", "index.n_postings=50"])
    index = instantiate(cfg.index)(docs)
    assert isinstance(index, ApproxIndex)
    assert index.cfg["n_postings"] == 50 and index.cfg["heap_factor"] == cfg.index.heap_factor
    assert index.search(queries, 5)[1].shape == (queries.shape[0], 5)


def test_search_knobs_reuse_the_cached_index(beir_dir, tmp_path):
    """query_cut / heap_factor steer search only: changing them reuses the cached index and
    applies the new values; a build setting makes a new index."""
    from irbench.config import compose
    from irbench.pipeline import build_index

    def handle(*extra: str):
        return build_index(compose([
            "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=bm25",
            "index=numba_approx", f"cache_dir={tmp_path / 'cache'}", *extra,
        ]))  # fmt: skip

    first = handle("index.query_cut=3")
    second = handle("index.query_cut=5", "index.heap_factor=0.7", "index.sorted_terms=3")
    assert not first.reused and second.reused and second.path == first.path
    assert second.index.cfg["query_cut"] == 5 and second.index.cfg["heap_factor"] == 0.7
    assert second.index.cfg["sorted_terms"] == 3
    third = handle("index.n_postings=40")
    assert not third.reused and third.path != first.path
    with pytest.raises(ConfigError, match="heap_factor"):
        handle("index.heap_factor=0")
