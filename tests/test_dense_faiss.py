"""Dense bi-encoder (encoder=dense) and the FAISS backend (index=faiss).

A tiny random BERT written to a temp folder stands in for real models (no network); one slow
test checks all-MiniLM-L6-v2 from ../shared against sentence-transformers' formula.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
faiss = pytest.importorskip("faiss")
transformers = pytest.importorskip("transformers")

from irbench.encoders.dense import DenseEncoder  # noqa: E402
from irbench.errors import ConfigError, DataError  # noqa: E402
from irbench.index.base import INDEX_TYPES, load_index, read_header  # noqa: E402
from irbench.index.faiss import FaissIndex  # noqa: E402
from irbench.types import Doc, Query  # noqa: E402

MINILM = Path(__file__).resolve().parents[2] / "shared" / "models" / "all-MiniLM-L6-v2"
WORDS = ["alpha", "beta", "gamma", "delta", "protein", "cell", "gene", "cancer", "dose", "risk",
         "query", "passage", ":", "the", "of", "a", "study", "trial", "mouse", "brain"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT (hidden 32) with a word-level vocabulary, saved as a HF folder."""
    from tests.conftest import save_tiny_bert

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), vocab, hidden=32, masked_lm=False)


def texts(n: int, seed: int = 0, lo: int = 1, hi: int = 30) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS[:10], k=rng.randint(lo, hi))) for _ in range(n)]


def manual(folder: Path, text: str, pooling: str, normalize: bool, max_length: int = 64):
    """One text alone (no padding) through the model, pooled by hand."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok([text], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0][0]
    v = hidden[0] if pooling == "cls" else hidden.mean(dim=0)
    v = v.numpy().astype(np.float64)
    return v / np.linalg.norm(v) if normalize else v


def enc(folder: Path, **kw) -> DenseEncoder:
    kw.setdefault("device", "cpu")
    kw.setdefault("threads", 1)
    return DenseEncoder(backbone=str(folder), **kw)


# ------------------------------------------------------------------------------ dense encoder


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("normalize", [True, False])
def test_pooling_matches_manual(tiny_model: Path, pooling: str, normalize: bool) -> None:
    sample = texts(9, seed=1)  # lengths differ: batches of 4 are padded
    got = enc(tiny_model, pooling=pooling, normalize=normalize, batch_size=4).encode_texts(sample)
    assert got.dtype == np.float32 and got.shape == (9, 32)
    want = np.stack([manual(tiny_model, t, pooling, normalize) for t in sample])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    norms = np.linalg.norm(got, axis=1)
    if normalize:
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    else:
        assert not np.allclose(norms, 1.0, atol=1e-2)


def test_prefixes_and_title(tiny_model: Path) -> None:
    e = enc(tiny_model, query_prefix="query: ", doc_prefix="passage: ")
    plain = enc(tiny_model)
    q = e.encode_queries([Query("q1", "alpha beta"), Query("q2", " gene ")])
    np.testing.assert_array_equal(q, plain.encode_texts(["query: alpha beta", "query: gene"]))
    docs = [Doc("d1", "protein cell", "alpha"), Doc("d2", "gene", "")]
    d = np.vstack(list(e.encode_corpus(docs)))
    np.testing.assert_array_equal(
        d, plain.encode_texts(["passage: alpha protein cell", "passage: gene"])
    )
    assert not np.allclose(q[0], plain.encode_texts(["alpha beta"])[0])
    assert e.config_key() != plain.config_key()


def test_length_sorted_batches_keep_order(tiny_model: Path) -> None:
    docs = [Doc(f"d{i}", t, "") for i, t in enumerate(texts(23, seed=2))]
    docs[5] = Doc("d5", "", "")  # an empty doc
    batched = list(enc(tiny_model, batch_size=4, sort_window=10).encode_corpus(docs))
    assert [b.shape[0] for b in batched] == [10, 10, 3]
    one = np.vstack(list(enc(tiny_model, batch_size=1).encode_corpus(docs)))
    np.testing.assert_allclose(np.vstack(batched), one, atol=2e-5)
    assert np.isfinite(one).all()
    empty = list(enc(tiny_model).encode_corpus([]))
    assert len(empty) == 1 and empty[0].shape == (0, 32)


def test_max_length_per_side(tiny_model: Path) -> None:
    long = " ".join(["alpha"] * 20)
    longer = long + " beta gamma delta"
    e = enc(tiny_model, doc_max_length=8, query_max_length=40)
    d = e.encode_texts([long, longer], side="doc")
    np.testing.assert_array_equal(d[0], d[1])  # both cut at 8 tokens
    q = e.encode_queries([Query("a", long), Query("b", longer)])
    assert not np.allclose(q[0], q[1])
    assert e.config_key()["doc_max_length"] == 8 and e.config_key()["query_max_length"] == 40


def test_config_key_fingerprint_and_errors(tiny_model: Path, tmp_path: Path) -> None:
    key = enc(tiny_model).config_key()
    assert key["model"].startswith("sha256:") and key["pooling"] == "mean"
    assert enc(tiny_model, pooling="cls").config_key() != key
    assert enc(tiny_model, batch_size=7).config_key() == key  # batching does not change vectors
    hub = DenseEncoder(device="cpu").config_key()
    assert hub["model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="encoder.backbone"):
        DenseEncoder(backbone=str(tmp_path / "missing"), device="cpu").config_key()
    with pytest.raises(ConfigError, match="encoder.pooling"):
        DenseEncoder(backbone=str(tiny_model), pooling="max")
    with pytest.raises(ConfigError, match="encoder.autocast"):
        DenseEncoder(backbone=str(tiny_model), device="cpu", autocast="int8")


def test_save_load(tiny_model: Path, tmp_path: Path) -> None:
    e = enc(tiny_model, doc_prefix="passage: ")
    e.save(tmp_path / "enc")
    meta = json.loads((tmp_path / "enc" / "dense_encoder.json").read_text())
    assert meta["dim"] == 32 and meta["config_key"] == e.config_key()
    # another query side is fine (it does not change the doc vectors)
    enc(tiny_model, doc_prefix="passage: ", query_prefix="q: ").load(tmp_path / "enc")
    with pytest.raises(DataError, match="re-encode"):
        enc(tiny_model).load(tmp_path / "enc")
    with pytest.raises(DataError):
        e.load(tmp_path / "nothing")


# ------------------------------------------------------------------------------ FAISS index


def brute_force(q: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q @ d.T
    ids = np.broadcast_to(np.arange(d.shape[0]), s.shape)
    order = np.lexsort((ids, -s), axis=-1)[:, :k]
    return np.take_along_axis(s, order, 1).astype(np.float32), order


def int_data(n: int = 1500, nq: int = 40, dim: int = 8, seed: int = 0):
    """Small-integer vectors: exact float32 dot products, many ties."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-1, 2, (n, dim)).astype(np.float32),
            rng.integers(-1, 2, (nq, dim)).astype(np.float32))  # fmt: skip


@pytest.mark.parametrize("nq", [1, 40])  # one query and a batch
@pytest.mark.parametrize("k", [1, 10, 200, 1500, 1510])
def test_flat_equals_brute_force_with_ties(nq: int, k: int) -> None:
    d, q = int_data()
    q = q[:nq]
    index = FaissIndex.build(d, factory="Flat")
    scores, idx = index.search(q, k)
    assert scores.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (nq, k)
    bs, bi = brute_force(q, d, min(k, len(d)))
    np.testing.assert_array_equal(idx[:, : bi.shape[1]], bi)
    np.testing.assert_array_equal(scores[:, : bs.shape[1]], bs)
    assert (idx[:, len(d) :] == -1).all() and np.isneginf(scores[:, len(d) :]).all()


def full_sort(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference order of a FAISS answer: every row fully sorted by (-score, idx), padding
    (idx -1 or score -FLT_MAX) as (-inf, -1) last."""
    missing = (i < 0) | (d <= -3.0e38)
    s = np.where(missing, -np.inf, d).astype(np.float32)
    idx = np.where(missing, -1, i).astype(np.int64)
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, idx), -s), axis=-1)
    return np.take_along_axis(s, order, 1), np.take_along_axis(idx, order, 1)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("seed", range(5))
def test_raw_answers_reordered_like_a_full_sort(seed: int, metric: str) -> None:
    """Whatever order FAISS hands back (ties in any order, rows out of order, padding
    anywhere), search returns each row as a full (-score, idx) sort would."""
    rng = np.random.default_rng(seed)
    nq, k = 30, 12
    d = rng.integers(0, 4, (nq, k)).astype(np.float32)  # few distinct scores: many ties
    d[:10] = -np.sort(-d[:10], axis=1)  # some rows already best first
    i = np.stack([rng.permutation(50)[:k] for _ in range(nq)]).astype(np.int64)
    pad = rng.random((nq, k)) < 0.15
    i[pad & (rng.random((nq, k)) < 0.5)] = -1
    d[pad] = np.float32(-3.4028235e38)
    d[-1, 0] = np.nan  # a NaN score (e.g. from NaN vectors) goes last, as a full sort puts it

    class Stub:  # l2: FAISS hands distances, smallest first, padding +FLT_MAX
        def search(self, q, kk):
            return (d.copy() if metric == "ip" else -d), i.copy()

    index = FaissIndex.build(random_unit(60, 4, seed), factory="HNSW8", metric=metric)
    index.index = Stub()
    scores, idx = index.search(np.zeros((nq, 4), np.float32), k)
    ref_s, ref_i = full_sort(d, i)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_array_equal(scores, ref_s)


@pytest.mark.parametrize("negate", [False, True])
def test_settle_rows_flags_exactly_the_rows_out_of_order(negate: bool) -> None:
    """The one-pass kernel behind FaissIndex's re-sort: padding marked and the rows flagged
    as a numpy pairwise check of (score desc, idx asc, padding last, NaN never in order)
    finds them."""
    from irbench.index.rows import settle_rows

    rng = np.random.default_rng(7)
    nq, k = 400, 9
    d = rng.integers(0, 3, (nq, k)).astype(np.float32)
    d[: nq // 2] = -np.sort(-d[: nq // 2], axis=1)  # half the rows best first
    i = np.tile(np.arange(k, dtype=np.int64), (nq, 1))
    i[::3] = rng.permuted(i[::3], axis=1)
    pad = rng.random((nq, k)) < 0.1
    i[pad & (rng.random((nq, k)) < 0.5)] = -1
    d[pad] = np.float32(-3.4028235e38)
    d[rng.random((nq, k)) < 0.01] = np.nan
    s_in = -d if negate else d.copy()
    s, idx = s_in.copy(), i.copy()
    bad = np.zeros(nq, dtype=bool)
    settle_rows(s, idx, np.float32(-3.0e38), negate, bad)
    missing = (i < 0) | (d <= -3.0e38)
    want_s, want_i = np.where(missing, -np.inf, d), np.where(missing, -1, i)
    np.testing.assert_array_equal(s, want_s.astype(np.float32))
    np.testing.assert_array_equal(idx, want_i)
    key = np.where(missing, np.iinfo(np.int64).max, i)
    s0, s1, k0, k1 = want_s[:, :-1], want_s[:, 1:], key[:, :-1], key[:, 1:]
    want_bad = (~((s1 < s0) | ((s1 == s0) & (k1 >= k0)))).any(axis=1)
    assert 0 < want_bad.sum() < nq
    np.testing.assert_array_equal(bad, want_bad)


@pytest.mark.parametrize("factory", ["IVF8,Flat", "HNSW8"])
def test_approximate_answers_sorted_with_ties_by_doc(factory: str) -> None:
    d, q = int_data(800, 25)
    index = FaissIndex.build(d, factory=factory, nprobe=2, ef_search=16)
    raw_d, raw_i = index.index.search(q, 50)
    scores, idx = index.search(q, 50)
    ref_s, ref_i = full_sort(raw_d, raw_i)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_array_equal(scores, ref_s)


def test_l2_metric_scores_negative_distance() -> None:
    d, q = int_data(300, 5)
    scores, idx = FaissIndex.build(d, factory="Flat", metric="l2").search(q, 20)
    dist = ((q[:, None, :] - d[None, :, :]) ** 2).sum(-1)
    bs, bi = brute_force(np.hstack([q, np.ones((5, 1), np.float32)]),
                         np.hstack([d, -0.5 * (d**2).sum(1, keepdims=True)]), 20)  # fmt: skip
    np.testing.assert_array_equal(idx, bi)
    np.testing.assert_array_equal(-scores, np.take_along_axis(dist, idx, 1))
    assert (bs == bs).all()


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(idx: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(idx, truth, strict=True)]))


def test_hnsw_recall_and_ivf_knobs() -> None:
    d, q = random_unit(3000, 32, 1), random_unit(50, 32, 2)
    _, truth = brute_force(q, d, 10)
    hnsw = FaissIndex.build(d, factory="HNSW32", ef_search=128)
    assert recall(hnsw.search(q, 10)[1], truth) >= 0.95
    scores, _ = hnsw.search(q, 10)
    assert (np.diff(scores, axis=1) <= 0).all()
    ivf = FaissIndex.build(d, factory="IVF16,Flat", nprobe=16, seed=3)
    np.testing.assert_array_equal(ivf.search(q, 10)[1], truth)  # every list probed: exact
    ivf.configure(nprobe=1)
    assert recall(ivf.search(q, 10)[1], truth) < 0.9


def test_save_load_round_trip(tmp_path: Path) -> None:
    assert INDEX_TYPES["faiss"] == "irbench.index.faiss:FaissIndex"
    d, q = random_unit(500, 16, 3), random_unit(7, 16, 4)
    # PQ with 4-bit codes: 8-bit PQ training takes ~20 s in faiss-cpu 1.15 here, even on 500 points
    for factory in ("Flat", "HNSW16", "IVF8,Flat", "IVF8,PQ4x4"):
        index = FaissIndex.build(d, factory=factory, nprobe=4, ef_search=64)
        want = index.search(q, 25)
        path = tmp_path / factory.replace(",", "_")
        index.save(path)
        header = read_header(path)
        assert header["type"] == "faiss" and header["factory"] == factory
        assert header["dim"] == 16 and header["n_docs"] == 500
        loaded = load_index(path)
        assert isinstance(loaded, FaissIndex) and loaded.mmap
        assert loaded.nprobe == 4 and loaded.ef_search == 64
        assert loaded.size_bytes == (path / "index.faiss").stat().st_size == index.size_bytes
        got = loaded.search(q, 25)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
    assert not list(tmp_path.glob("*.tmp-*"))


def test_bad_factory_and_inputs() -> None:
    d, q = int_data(100, 3)
    for bad in ("Foo12", "PQ3", "IVF500,Flat", "", "IDMap,Flat", "Flat,IDMap"):
        with pytest.raises(ConfigError, match="index.factory") as err:
            FaissIndex.build(d, factory=bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="index.metric"):
        FaissIndex.build(d, metric="cosine")
    with pytest.raises(ConfigError, match="index.factory"):
        FaissIndex.check(384, factory="IVF10,PQ7")  # checkable before encoding
    assert FaissIndex.check(384, factory="IVF10,PQ8").d == 384
    index = FaissIndex.build(d)
    with pytest.raises(ConfigError, match="dim"):
        index.search(np.zeros((2, 5), np.float32), 3)
    s, i = index.search(q, 0)
    assert s.shape == i.shape == (3, 0)
    with pytest.raises(ConfigError, match="k must be a non-negative integer"):
        index.search(q, 1.5)
    index.configure(nprobe=np.int64(2), ef_search=np.int32(8))  # numpy ints are ints
    assert (index.nprobe, index.ef_search) == (2, 8)
    built = FaissIndex.build(d, factory="IVF2,Flat", nprobe=np.int64(2), seed=0)
    with tempfile.TemporaryDirectory() as tmp:  # the header is JSON: a numpy int broke it
        built.save(Path(tmp) / "ivf")
    with pytest.raises(ConfigError, match="index.nprobe"):
        index.configure(nprobe=2.5)
    s, i = FaissIndex.build(np.zeros((0, 8), np.float32)).search(q, 4)
    assert (i == -1).all() and np.isneginf(s).all()


@pytest.mark.parametrize("factory", ["SQ8", "SQ4", "HNSW16,SQ8"])
def test_a_minmax_scalar_quantizer_trains_from_one_pass_exactly(factory: str, monkeypatch) -> None:
    """Trained from the per-dimension min and max (two rows, no copy of the corpus), the
    quantizer equals the one FAISS trains on every row: same ranges, same codes, same hits."""
    from irbench.index import faiss as faiss_module
    from irbench.index.faiss import minmax_quantizer

    def no_copy(*_):
        raise AssertionError("the corpus was gathered into one training matrix")

    monkeypatch.setattr(faiss_module, "_gather", no_copy)
    docs = random_unit(3000, 24, 4) * np.linspace(0.5, 3.0, 24, dtype=np.float32)
    ours = FaissIndex.build(_uneven(docs), factory=factory)
    theirs = faiss.index_factory(24, factory, faiss.METRIC_INNER_PRODUCT)
    theirs.train(docs)  # every row
    theirs.add(docs)
    a, b = minmax_quantizer(ours.index), minmax_quantizer(theirs)
    np.testing.assert_array_equal(faiss.vector_to_array(a.sq.trained),
                                  faiss.vector_to_array(b.sq.trained))  # fmt: skip
    np.testing.assert_array_equal(faiss.vector_to_array(a.codes), faiss.vector_to_array(b.codes))
    if "HNSW" not in factory:  # a graph also depends on its search knobs and build threads
        queries = random_unit(20, 24, 5)
        assert (ours.search(queries, 10)[1] == theirs.search(queries, 10)[1]).all()
    assert minmax_quantizer(faiss.index_factory(24, "IVF4,SQ8")) is None  # residuals: all rows


def _uneven(x: np.ndarray, cuts=(0, 7, 7, 130, 401, 402)):
    """``x`` as DenseBlocks of uneven sizes (one empty), read-only like memory-mapped chunks."""
    from irbench.types import DenseBlocks

    edges = [*cuts, len(x)]
    parts = [x[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    for part in parts:
        part.flags.writeable = False
    return DenseBlocks(lambda: iter(parts), len(x), x.shape[1])


@pytest.mark.parametrize(
    ("factory", "train_size"),
    [("Flat", None), ("IVF8,Flat", None), ("IVF8,Flat", 300), ("IVF8,PQ4x4", 200), ("HNSW8", None)],
)
def test_build_from_blocks_equals_build_from_the_matrix(
    factory: str, train_size: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import irbench.index.faiss as faiss_index

    monkeypatch.setattr(faiss_index, "ADD_BATCH", 97)  # several add batches across blocks
    d = random_unit(700, 16, 8)
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # HNSW adds in parallel otherwise
    try:
        whole = FaissIndex.build(d.copy(), factory=factory, train_size=train_size)
        seen = []
        blocks = FaissIndex.build(
            _uneven(d), factory=factory, train_size=train_size,
            progress=lambda done, n: seen.append((done, n)),
        )  # fmt: skip
    finally:
        faiss.omp_set_num_threads(old)
    assert blocks.n_docs == 700
    assert bytes(faiss.serialize_index(blocks.cpu_index)) == bytes(
        faiss.serialize_index(whole.cpu_index)
    )
    assert seen == [(min(700, 97 * i), 700) for i in range(1, 9)]


def test_default_train_size_is_faiss_own_sample_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from irbench.index import faiss as faiss_index
    from irbench.index.faiss import default_train_size

    def size(factory: str) -> int | None:
        return default_train_size(faiss.index_factory(8, factory))

    assert size("IVF1024,Flat") == 256 * 1024 and size("IVF16,Flat") == 256 * 256
    assert size("IVF16,PQ4") == 256 * 256 and size("IVF16,PQ4x10") == 256 * 1024
    assert size("OPQ4,IVF512,PQ4") == 256 * 512 and size("PQ4x12") == 256 * 4096
    assert size("PCA4,IVF16,Flat") == 256 * 256
    # scalar quantizers take their ranges from every row; unknown types get every row too
    assert size("SQ8") is None and size("IVF16,SQ8") is None and size("HNSW8") is None
    d = random_unit(700, 16, 8)
    monkeypatch.setattr(faiss_index, "default_train_size", lambda index: 120)
    sampled = FaissIndex.build(d, factory="IVF4,Flat")  # train_size null: 120 rows sampled
    given = FaissIndex.build(d, factory="IVF4,Flat", train_size=120)
    every = FaissIndex.build(d, factory="IVF4,Flat", train_size=700)
    serial = [bytes(faiss.serialize_index(x.cpu_index)) for x in (sampled, given, every)]
    assert serial[0] == serial[1] != serial[2]


def test_batches_rechunk_blocks_and_check_them() -> None:
    from irbench.index.faiss import _batches
    from irbench.types import DenseBlocks

    x = random_unit(403, 4, 9)
    got = list(_batches(_uneven(x), 50))
    assert [len(b) for b in got] == [50] * 8 + [3]
    assert all(b.flags.c_contiguous and b.dtype == np.float32 for b in got)
    np.testing.assert_array_equal(np.concatenate(got), x)
    wrong_dim = DenseBlocks(lambda: iter([x, x[:, :3]]), 806, 4)
    with pytest.raises(ConfigError, match=r"shape \(403, 3\), expected \[rows, 4\]"):
        FaissIndex.build(wrong_dim)
    short = DenseBlocks(lambda: iter([x]), 500, 4)
    with pytest.raises(ConfigError, match="hold 403 rows, not 500"):
        FaissIndex.build(short)


def test_threads_do_not_change_flat_results() -> None:
    d, q = random_unit(4000, 48, 5), random_unit(64, 48, 6)
    index = FaissIndex.build(d)
    one = index.search(q, 50, threads=1)
    two = index.search(q, 50, threads=2)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])


def test_dense_pipeline_end_to_end(tiny_model: Path, beir_dir: Path, tmp_path: Path) -> None:
    from irbench.config import compose
    from irbench.pipeline import run

    cfg = compose([
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
        "encoder=dense", f"encoder.backbone={tiny_model}", "encoder.device=cpu",
        "index=faiss", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}",
        "k=50", "threads=1",
    ])  # fmt: skip
    metrics, objects = run(cfg)
    assert set(metrics) >= {"nDCG@10"} and isinstance(objects["index"].index, FaissIndex)
    lines = (tmp_path / "run" / "run.trec").read_text().splitlines()
    assert lines and len(lines) <= 40 * 50
    again, _ = run(cfg)  # from the cache
    assert again == metrics


def test_dense_pipeline_builds_from_the_chunks(
    tiny_model: Path, beir_dir: Path, tmp_path: Path
) -> None:
    from irbench.config import compose
    from irbench.pipeline import run
    from irbench.runs.shards import merge_chunks, stream_chunks
    from irbench.types import DenseBlocks

    base = [
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
        "encoder=dense", f"encoder.backbone={tiny_model}", "encoder.device=cpu",
        f"cache_dir={tmp_path / 'cache'}", "k=10", "threads=1", "encode.chunk_size=64",
    ]  # fmt: skip
    cfg = compose([*base, "index=faiss", "index.factory='IVF4,Flat'", "index.train_size=100",
                   f"run_dir={tmp_path / 'run'}"])  # fmt: skip
    _, objects = run(cfg)
    handle = objects["index"]
    entry = Path(handle.info["encoded_cache"])
    streamed, docnos = stream_chunks(entry, 5)  # 300 docs in chunks of 64
    assert isinstance(streamed, DenseBlocks) and streamed.shape == (300, handle.index.dim)
    assert [len(b) for b in streamed.blocks()] == [64, 64, 64, 64, 44]
    merged, same = merge_chunks(entry, 5)
    assert same == docnos == handle.docnos
    want = FaissIndex.build(merged, factory="IVF4,Flat", train_size=100, nprobe=32, ef_search=128)
    got = (handle.path / "index" / "index.faiss").read_bytes()
    assert got == bytes(faiss.serialize_index(want.cpu_index))
    # a dense encoder with a sparse index is one clear error, before encoding
    with pytest.raises(ConfigError, match="index=numba_approx needs a sparse encoder"):
        run(compose([*base, "index=numba_approx", f"run_dir={tmp_path / 'bad'}"]))


# ------------------------------------------------------------------------------ real model


@pytest.mark.slow
def test_minilm_matches_sentence_transformers_formula() -> None:
    if not MINILM.is_dir():
        pytest.skip(f"{MINILM} not found (../shared/models is absent)")
    from transformers import AutoModel, AutoTokenizer

    sample = [
        "A man is eating food.",
        "Vitamin D deficiency is associated with an increased risk of multiple sclerosis.",
        "0-dimensional biomaterials show inductive properties. " * 60,  # > 256 tokens
        "",
    ]
    tok = AutoTokenizer.from_pretrained(MINILM)
    model = AutoModel.from_pretrained(MINILM).eval()
    batch = tok(sample, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch)[0]
    m = batch["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1)
    e = DenseEncoder(backbone=str(MINILM), device="cpu", batch_size=2)
    got = e.encode_texts(sample)
    assert e.dim == 384 and got.shape == (4, 384)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_query_batches_use_faiss_blas_path_and_restore_the_global() -> None:
    """FAISS's flat-distance switch (queries x dim >= distance_compute_blas_threshold) is set
    per search so that every batch takes the BLAS path; the global is restored afterwards."""
    from irbench.index import faiss as faiss_index

    seen = []
    index = FaissIndex.build(random_unit(60, 4, 0), factory="Flat")
    real = index.index

    class Spy:
        def search(self, q, kk, **kw):
            seen.append(faiss.cvar.distance_compute_blas_threshold)
            return real.search(q, kk, **kw)

    before = faiss.cvar.distance_compute_blas_threshold
    index.index = Spy()
    index.search(random_unit(9, 4, 1), 3)
    assert seen == [faiss_index.BLAS_THRESHOLD] == [0]
    assert faiss.cvar.distance_compute_blas_threshold == before


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat"])
def test_a_querys_hits_do_not_depend_on_its_batch(factory: str) -> None:
    """Rows searched one at a time, in short batches and all together are identical, scores
    to the bit: FAISS's per-query distance path (its default below ~333 queries at dim 384)
    differs from the BLAS one in the last bits, which reorders ties."""
    docs = random_unit(3000, 96, 0)
    docs[1::2] = docs[0::2][:, ::-1]  # pairs that tie exactly for symmetric queries
    queries = random_unit(40, 96, 1)
    queries = (queries + queries[:, ::-1]) / 2
    index = FaissIndex.build(docs, factory=factory, nprobe=4, seed=0)
    s, d = index.search(queries, 50)
    for size in (1, 3, 7, 8, 13):
        for start in range(0, 40, size):
            bs, bd = index.search(queries[start : start + size], 50)
            np.testing.assert_array_equal(bs, s[start : start + size])
            np.testing.assert_array_equal(bd, d[start : start + size])


def test_blas_threshold_is_shared_by_equal_values_and_serialises_others() -> None:
    """Overlapping searches (threads) share the process-wide FAISS setting when they ask for
    the same value, whatever order they leave in; one asking for another value waits for
    them; the setting from before is restored at the end."""
    import threading

    from irbench.index.faiss import blas_threshold

    before = faiss.cvar.distance_compute_blas_threshold
    first, second = blas_threshold(5), blas_threshold(5)
    first.__enter__()
    second.__enter__()
    assert faiss.cvar.distance_compute_blas_threshold == 5
    first.__exit__(None, None, None)  # the first leaves while the second still searches
    assert faiss.cvar.distance_compute_blas_threshold == 5
    seen = []
    entered = threading.Event()

    def other() -> None:
        with blas_threshold(7):
            seen.append(faiss.cvar.distance_compute_blas_threshold)
            entered.set()

    t = threading.Thread(target=other)
    t.start()
    assert not entered.wait(0.3)  # another value waits while a 5 search runs
    second.__exit__(None, None, None)
    t.join(5)
    assert seen == [7]
    assert faiss.cvar.distance_compute_blas_threshold == before


def test_searches_from_several_threads_equal_one_thread() -> None:
    """Threads searching two indexes of different widths (different BLAS switches) get
    exactly the answers of one thread searching alone."""
    from concurrent.futures import ThreadPoolExecutor

    before = faiss.cvar.distance_compute_blas_threshold
    indexes = {16: FaissIndex.build(random_unit(500, 16, 0), factory="Flat"),
               24: FaissIndex.build(random_unit(500, 24, 1), factory="Flat")}  # fmt: skip
    jobs = [(dim, random_unit(n, dim, seed)) for seed, (dim, n) in
            enumerate([(16, 1), (24, 9), (16, 40), (24, 3), (16, 64), (24, 8)] * 4)]  # fmt: skip
    want = [indexes[dim].search(q, 10, threads=1) for dim, q in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: indexes[job[0]].search(job[1], 10, threads=1), jobs))
    for (ws, wd), (gs, gd) in zip(want, got, strict=True):
        np.testing.assert_array_equal(gd, wd)
        np.testing.assert_array_equal(gs, ws)
    assert faiss.cvar.distance_compute_blas_threshold == before


def test_a_tie_across_the_kth_place_is_searched_only_as_deep_as_the_tie_group() -> None:
    """20 copies of one doc tie at the top: Flat searches 11 then 22 deep and stops (it used
    to double up to the whole corpus), and the answer is the brute-force one."""
    docs = random_unit(5000, 8, 3)
    docs[100:120] = docs[7]
    index = FaissIndex.build(docs, factory="Flat")
    depths = []
    raw = index._raw_search

    def spy(q, depth, params=None):
        depths.append(depth)
        return raw(q, depth, params)

    index._raw_search = spy
    q = docs[7:8].copy()
    scores, idx = index.search(q, 10)
    assert depths == [11, 22]
    want_s, want_i = brute_force(q, docs, 10)
    np.testing.assert_array_equal(idx, want_i)
    assert idx[0].tolist() == [7, *range(100, 109)]


def test_blas_threshold_nested_in_one_thread_does_not_wait_for_itself() -> None:
    import threading

    from irbench.index.faiss import blas_threshold

    before = faiss.cvar.distance_compute_blas_threshold
    done = threading.Event()

    def nested() -> None:
        with blas_threshold(5), blas_threshold(7):  # e.g. a search of another width inside
            pass
        done.set()

    t = threading.Thread(target=nested, daemon=True)
    t.start()
    assert done.wait(5), "nested blas_threshold deadlocked"
    assert faiss.cvar.distance_compute_blas_threshold == before
