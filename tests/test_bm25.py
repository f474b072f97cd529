"""Lucene-like analyzer and BM25 sparse encoder."""

from __future__ import annotations

import json
import math
import pickle
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from irbench.encoders.analyzer import LUCENE_STOP_WORDS, Analyzer, lucene_porter, tokenize
from irbench.encoders.bm25 import (
    LENGTH_TABLE,
    SMALL_BATCH,
    BM25Encoder,
    byte4_to_int,
    int_to_byte4,
    lucene_doc_length,
)
from irbench.errors import ConfigError, DataError, IrbenchError
from irbench.types import Doc, Query, SparseEncoder

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# -- tokenizer -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("   \n\t ", []),
        ("Hello, World!", ["hello", "world"]),
        # '.' and apostrophes join letters; '.', ',' and ';' join digits
        ("The U.S.A. can't", ["the", "u.s.a", "can't"]),
        ("pi is 3.14, about 1,000.5 or 1;2", ["pi", "is", "3.14", "about", "1,000.5", "or", "1;2"]),
        ("e.g. end. a.1 1.a", ["e.g", "end", "a", "1", "1", "a"]),
        # letters and digits run together; underscores join; ':' joins letters only
        ("abc123def IL-6 foo_bar __init__ ___", ["abc123def", "il", "6", "foo_bar", "__init__"]),
        (
            "foo:bar 10:30 http://example.com/a_b",
            ["foo:bar", "10", "30", "http", "example.com", "a_b"],
        ),
        (
            "x--y x/y (x) [y] x+y x=y x&y",
            ["x", "y", "x", "y", "x", "y", "x", "y", "x", "y", "x", "y"],
        ),
        ("’quoted’ 'single' \"double\"", ["quoted", "single", "double"]),
        ("½ ² ± → ☆ % $ #", []),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Café naïve ÉCOLE", ["café", "naïve", "école"]),
        ("cafe\u0301 co\u00adoperate", ["cafe\u0301", "co\u00adoperate"]),  # marks, soft hyphen
        ("中文字 ひらがな", ["中", "文", "字", "ひ", "ら", "が", "な"]),  # one token per character
        ("カタカナ ภาษาไทย 한국어", ["カタカナ", "ภาษาไทย", "한국어"]),  # runs
        ("ΣΟΦΟΣ İstanbul", ["σοφοσ", "istanbul"]),  # Java's per-character lower-casing
        ("α-synuclein β2 TGF-β1", ["α", "synuclein", "β2", "tgf", "β1"]),
        ("👍🏽 ok 🇫🇷 Tylenol® ©2012", ["👍🏽", "ok", "🇫🇷", "tylenol", "®", "©", "2012"]),  # emoji
    ],
)
def test_tokenize_unicode(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_chops_long_tokens_at_255() -> None:
    assert [len(t) for t in tokenize("a" * 600 + " b")] == [255, 255, 90, 1]
    assert [len(t) for t in tokenize("é" * 300)] == [255, 45]


# -- analyzer --------------------------------------------------------------------------------------
def test_lucene_stop_words() -> None:
    assert len(LUCENE_STOP_WORDS) == 33
    a = Analyzer()
    assert a("The cat and the hat are in it, such is THIS!") == ["cat", "hat"]
    assert a(" ".join(sorted(LUCENE_STOP_WORDS))) == []


def test_possessives() -> None:
    a = Analyzer(stemmer="none")
    assert a("John's JOHN'S john’s O'Neil's students' x's") == [
        "john",
        "john",
        "john",
        "o'neil",
        "students",
        "x",
    ]
    # stop words are removed after the possessive filter (Lucene's order)
    assert a("it's") == []


def test_stemmers() -> None:
    text = "The relational databases generalization methodology running happily"
    assert Analyzer()(text) == ["relat", "databas", "gener", "methodolog", "run", "happili"]
    assert Analyzer(stemmer="english")(text) == [
        "relat",
        "databas",
        "general",
        "methodolog",
        "run",
        "happili",
    ]
    assert Analyzer(stemmer="none")(text) == [
        "relational",
        "databases",
        "generalization",
        "methodology",
        "running",
        "happily",
    ]


def test_porter_is_lucene_porter() -> None:
    # expected values are the output of org.apache.lucene.analysis.en.PorterStemmer
    words = (
        "caresses ponies ties caress cats feed agreed disabled matting mating meeting milling "
        "messing meetings generalization methodology incredibly assembly oscced happy sky "
        "relational conditional hopefulness electrical adjustment"
    ).split()
    lucene = (
        "caress poni ti caress cat feed agre disabl mat mate meet mill mess meet gener "
        "methodolog incred assembl osc happi sky relat condit hope electr adjust"
    ).split()
    assert [lucene_porter(w) for w in words] == lucene
    assert Analyzer(stopwords="none")(" ".join(words)) == lucene
    # words of one or two characters are never stemmed (Snowball would give "a", "u")
    assert Analyzer(stopwords="none")("as us is") == ["as", "us", "is"]


def test_stopword_options() -> None:
    assert Analyzer(stopwords="none", stemmer="none")("the cat") == ["the", "cat"]
    assert Analyzer(stopwords=["Cat"], stemmer="none")("the cat") == ["the"]
    with pytest.raises(ConfigError):
        Analyzer(stopwords="english")
    with pytest.raises(ConfigError):
        Analyzer(stemmer="krovetz")


def test_lowercase_off() -> None:
    assert Analyzer(stemmer="none", stopwords="none", lowercase=False)("The CAT") == ["The", "CAT"]


def test_analyze_many_matches_call_and_pickles() -> None:
    texts = ["The cats' whiskers", "", "running runners ran", "Cats: 3.14 cats!", "the of"]
    a = Analyzer()
    expected = [Analyzer()(t) for t in texts]
    assert a.analyze_many(texts) == expected
    b = pickle.loads(pickle.dumps(a))
    assert b.analyze_many(texts) == expected
    assert b.config() == a.config()
    # a tiny cache is cleared and refilled without changing the terms
    assert Analyzer(cache_size=2).analyze_many(texts * 3) == expected * 3


# -- SmallFloat ------------------------------------------------------------------------------------
# (length, norm byte, decoded length), derived by hand from SmallFloat.intToByte4/byte4ToInt:
# values below NUM_FREE_VALUES = 255 - longToInt4(2^31-1) = 255 - 231 = 24 are stored as is;
# larger ones as 24 + longToInt4(x - 24), keeping the 4 most significant bits of x - 24.
SMALLFLOAT_CASES = [
    (0, 0, 0),
    (1, 1, 1),
    (23, 23, 23),
    (24, 24, 24),  # x-24 = 0: subnormal
    (31, 31, 31),  # x-24 = 7 = 0b111: still subnormal (3 bits)
    (32, 32, 32),  # x-24 = 8 = 0b1000: shift 0, (8 & 7) | 1<<3 = 8
    (41, 40, 40),  # x-24 = 17 = 0b10001: shift 1 -> 0b1000 -> 0 | 2<<3 = 16; decodes 8<<1 = 16
    (47, 43, 46),  # x-24 = 23 = 0b10111: shift 1 -> 0b1011 -> 3 | 16 = 19; decodes 11<<1 = 22
    (100, 57, 96),  # x-24 = 76 = 0b1001100: shift 3 -> 0b1001 -> 1 | 4<<3 = 33; 9<<3 = 72
    (1000, 87, 984),  # x-24 = 976 = 0b1111010000: shift 6 -> 0b1111 -> 7 | 56 = 63; 15<<6 = 960
    (2**31 - 1, 255, 2013265944),  # shift 27 -> 0b1111 -> 7 | 28<<3 = 231; 15<<27 = 2013265920
]


@pytest.mark.parametrize(("length", "byte", "decoded"), SMALLFLOAT_CASES)
def test_smallfloat_values(length: int, byte: int, decoded: int) -> None:
    assert int_to_byte4(length) == byte
    assert byte4_to_int(byte) == decoded
    assert lucene_doc_length(np.array([length]))[0] == decoded


def test_smallfloat_table_round_trip() -> None:
    assert LENGTH_TABLE[0] == 0 and np.all(np.diff(LENGTH_TABLE) > 0)
    assert all(int_to_byte4(byte4_to_int(i)) == i for i in range(256))
    with pytest.raises(ValueError):
        int_to_byte4(-1)


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_smallfloat_properties(x: int) -> None:
    decoded = byte4_to_int(int_to_byte4(x))
    assert decoded <= x
    assert x - decoded <= max(0, (x - 24) // 8)  # 4 significant bits kept
    assert decoded == lucene_doc_length(np.array([x]))[0]
    if x < 2**31 - 1:
        assert int_to_byte4(x + 1) >= int_to_byte4(x)


# -- BM25 impacts ----------------------------------------------------------------------------------
def lucene_bm25_scores(
    docs: list[str], queries: list[str], k1: float, b: float, norms: bool
) -> np.ndarray:
    """Plain-Python Lucene 8+ BM25 over whitespace tokens: sum over distinct query terms of
    count * idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    tfs = [Counter(d.split()) for d in docs]
    lengths = [len(d.split()) for d in docs]
    doc_count = sum(1 for n in lengths if n)
    avgdl = sum(lengths) / doc_count if doc_count else 0.0
    df = Counter(t for tf in tfs for t in tf)
    scores = np.zeros((len(queries), len(docs)))
    for qi, q in enumerate(queries):
        for term, count in Counter(q.split()).items():
            if term not in df:
                continue
            idf = math.log(1 + (doc_count - df[term] + 0.5) / (df[term] + 0.5))
            for di, tf in enumerate(tfs):
                if term in tf:
                    dl = byte4_to_int(int_to_byte4(lengths[di])) if norms else lengths[di]
                    f = tf[term]
                    scores[qi, di] += count * idf * f / (f + k1 * (1 - b + b * dl / avgdl))
    return scores


def plain_encoder(**kw: object) -> BM25Encoder:
    return BM25Encoder(stemmer="none", stopwords="none", **kw)


def encode(enc: BM25Encoder, docs: list[Doc]) -> sp.csr_matrix:
    batches = list(enc.encode_corpus(docs))
    for m in batches:
        assert m.dtype == np.float32 and m.has_canonical_format
        assert m.shape[1] == enc.vocab_size
    if not batches:
        return sp.csr_matrix((0, enc.vocab_size), dtype=np.float32)
    return sp.vstack(batches).tocsr()


WORDS = [f"w{i}" for i in range(12)]
corpora = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=0, max_size=60).map(" ".join), min_size=1, max_size=25
)


@settings(max_examples=60, deadline=None)
@given(
    docs=corpora,
    queries=st.lists(
        st.lists(st.sampled_from(WORDS + ["oov"]), max_size=6).map(" ".join), min_size=1
    ),
    k1=st.sampled_from([0.9, 1.2, 0.0, 2.5]),
    b=st.sampled_from([0.4, 0.75, 0.0, 1.0]),
    norms=st.booleans(),
    batch_size=st.integers(min_value=1, max_value=30),
)
def test_impacts_match_lucene_bm25(
    docs: list[str], queries: list[str], k1: float, b: float, norms: bool, batch_size: int
) -> None:
    enc = plain_encoder(k1=k1, b=b, lucene_norms=norms, batch_size=batch_size)
    d = encode(enc, [Doc(str(i), t) for i, t in enumerate(docs)])
    assert d.shape == (len(docs), enc.vocab_size)
    assert enc.terms == sorted({t for text in docs for t in text.split()})
    q = enc.encode_queries([Query(str(i), t) for i, t in enumerate(queries)])
    got = (q @ d.T).toarray()
    want = lucene_bm25_scores(docs, queries, k1, b, norms)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lucene_norms_change_long_docs_only() -> None:
    docs = [Doc("a", "x " * 10 + "y"), Doc("b", "x " * 100 + "y"), Doc("c", "y z")]
    with_norms = encode(plain_encoder(), docs).toarray()
    without = encode(plain_encoder(lucene_norms=False), docs).toarray()
    np.testing.assert_array_equal(with_norms[[0, 2]], without[[0, 2]])  # lengths < 24: exact
    assert not np.allclose(with_norms[1], without[1])  # 101 is stored as 96
    for bad in ("maybe", "false", 0):  # a string was truthy: lucene_norms=maybe meant true
        with pytest.raises(ConfigError, match="encoder.lucene_norms"):
            plain_encoder(lucene_norms=bad)


def test_title_is_indexed_and_empty_docs_are_empty_rows() -> None:
    enc = plain_encoder()
    docs = [Doc("1", "alpha beta", title="gamma"), Doc("2", ""), Doc("3", "alpha"), Doc("4", " ")]
    d = encode(enc, docs)
    assert enc.terms == ["alpha", "beta", "gamma"]
    assert d.shape == (4, 3)
    assert d.getnnz(axis=1).tolist() == [3, 0, 1, 0]
    assert (enc.n_docs, enc.doc_count, enc.sum_total_tf) == (4, 2, 4)
    assert enc.avgdl == 2.0  # over docs with terms (Lucene's docCount)
    # stop-word-only docs are empty too
    enc = BM25Encoder()
    d = encode(enc, [Doc("1", "the and of"), Doc("2", "cats")])
    assert d.getnnz(axis=1).tolist() == [0, 1] and enc.doc_count == 1


def test_degenerate_corpora() -> None:
    enc = plain_encoder()
    assert encode(enc, []).shape == (0, 0)
    assert enc.encode_queries([Query("q", "anything")]).shape == (1, 0)
    d = encode(enc, [Doc("1", ""), Doc("2", "...")])
    assert d.shape == (2, 0) and enc.avgdl == 0.0
    with pytest.raises(IrbenchError):
        plain_encoder().encode_queries([Query("q", "x")])


def test_batches() -> None:
    docs = [Doc(str(i), f"w{i % 7} w{i % 3} shared") for i in range(25)]
    enc = plain_encoder(batch_size=10)
    sizes = [m.shape[0] for m in enc.encode_corpus(docs)]
    assert sizes == [10, 10, 5]
    a = encode(plain_encoder(batch_size=10), docs)
    b = encode(plain_encoder(batch_size=1000), docs)
    assert (a != b).nnz == 0


def test_corpus_blocks_reread_the_same_batches_and_index_like_the_stacked_matrix() -> None:
    from irbench.index.numba import NumbaIndex

    rng = random.Random(3)
    docs = [Doc(str(i), " ".join(rng.choices(WORDS, k=rng.randint(0, 30)))) for i in range(47)]
    stacked = encode(plain_encoder(batch_size=1000), docs)
    enc = plain_encoder(batch_size=10)
    blocks = enc.corpus_blocks(docs)
    assert blocks.n_terms == enc.vocab_size == stacked.shape[1]
    first, second = list(blocks.blocks()), list(blocks.blocks())
    assert [b.shape[0] for b in first] == [10, 10, 10, 10, 7]
    for a, b in zip(first, second, strict=True):
        assert a.has_canonical_format and (a != b).nnz == 0
    assert (sp.vstack(first).tocsr() != stacked).nnz == 0
    streamed, whole = NumbaIndex.build(blocks), NumbaIndex.build(stacked)
    for name in ("offsets", "doc_ids", "weights"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name))


# -- queries ---------------------------------------------------------------------------------------
def test_query_weighting() -> None:
    docs = [Doc("1", "cat dog"), Doc("2", "dog bird")]
    queries = [
        Query("q1", "Cats cat's CAT dog zebra"),
        Query("q2", ""),
        Query("q3", "the of and"),
        Query("q4", "zebra"),
    ]
    enc = BM25Encoder()
    encode(enc, docs)
    assert enc.terms == ["bird", "cat", "dog"]
    q = enc.encode_queries(queries)
    assert q.dtype == np.float32 and q.shape == (4, 3) and q.has_canonical_format
    assert q.toarray().tolist() == [[0, 3, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    enc = BM25Encoder(query_weighting="binary")
    encode(enc, docs)
    assert enc.encode_queries(queries).toarray().tolist()[0] == [0, 1, 1]
    assert enc.encode_queries([]).shape == (0, 3)
    with pytest.raises(ConfigError):
        BM25Encoder(query_weighting="tfidf")


@settings(max_examples=40, deadline=None)
@given(
    queries=st.lists(
        st.lists(st.sampled_from(WORDS + ["oov", "the"]), max_size=8).map(" ".join), max_size=40
    ),
    binary=st.booleans(),
)
def test_query_rows_equal_a_counter_reference(queries: list[str], binary: bool) -> None:
    # encode_queries builds small and large batches on different code paths: both must give
    # the term counts (or 1) of a plain Counter over the analysed terms
    enc = plain_encoder(query_weighting="binary" if binary else "count")
    encode(enc, [Doc(str(i), w) for i, w in enumerate(WORDS)])
    col = {t: i for i, t in enumerate(enc.terms)}
    expected = np.zeros((len(queries), enc.vocab_size), np.float32)
    for row, text in enumerate(queries):
        for term, n in Counter(enc.analyzer(text)).items():
            if term in col:
                expected[row, col[term]] = 1 if binary else n
    for copies in (1, SMALL_BATCH + 1):  # the large path too, whatever the drawn size
        qs = [Query(str(i), t) for i, t in enumerate(queries * copies)]
        q = enc.encode_queries(qs)
        assert q.dtype == np.float32 and q.has_canonical_format
        np.testing.assert_array_equal(q.toarray(), np.tile(expected, (copies, 1)))


# -- persistence, determinism, protocol ------------------------------------------------------------
def test_save_load_round_trip(tmp_path: Path) -> None:
    docs = [Doc(str(i), f"The runner's {i} runs: ünïcode-{i % 3} café") for i in range(40)]
    queries = [Query("a", "runner runs café"), Query("b", "ÜNÏCODE 7 running"), Query("c", "")]
    enc = BM25Encoder(k1=1.2, b=0.75, stemmer="english", query_weighting="binary")
    encode(enc, docs)
    enc.save(tmp_path / "bm25")
    meta = json.loads((tmp_path / "bm25" / "bm25.json").read_text())
    assert meta["k1"] == 1.2 and meta["doc_count"] == 40 and meta["vocab_size"] == enc.vocab_size
    loaded = BM25Encoder()  # other parameters: load restores the saved ones
    loaded.load(tmp_path / "bm25")
    assert loaded.config_key() == enc.config_key()
    assert loaded.terms == enc.terms and loaded.avgdl == enc.avgdl
    np.testing.assert_array_equal(loaded.df, enc.df)
    a, b = enc.encode_queries(queries), loaded.encode_queries(queries)
    assert (a != b).nnz == 0 and a.shape == b.shape
    with pytest.raises(DataError):
        BM25Encoder().load(tmp_path / "missing")


def test_shuffled_docs_give_the_same_vocabulary() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    docs = [Doc(str(i), " ".join(rng.choices(words, k=rng.randint(0, 30)))) for i in range(60)]
    shuffled = docs[:]
    rng.shuffle(shuffled)
    e1, e2 = BM25Encoder(batch_size=7), BM25Encoder(batch_size=13)
    d1, d2 = encode(e1, docs), encode(e2, shuffled)
    assert e1.terms == e2.terms == sorted(e1.terms)
    np.testing.assert_array_equal(e1.df, e2.df)
    order = [int(d.doc_id) for d in shuffled]
    np.testing.assert_array_equal(d1[order].toarray(), d2.toarray())


def test_protocol_and_config_key() -> None:
    enc = BM25Encoder(k1=0.9, b=0.4, unknown_key="ignored")
    assert isinstance(enc, SparseEncoder) and enc.kind == "sparse"
    key = enc.config_key()
    for name in ("k1", "b", "stemmer", "stopwords", "lucene_norms", "query_weighting", "format"):
        assert name in key
    assert BM25Encoder(k1=1.2).config_key() != key
    assert BM25Encoder(lucene_norms=False).config_key() != key
    assert BM25Encoder(stopwords=["x"]).config_key()["stopwords"] == ["x"]
    with pytest.raises(ConfigError):
        BM25Encoder(b=1.5)
    pickle.loads(pickle.dumps(enc))


# -- real data -------------------------------------------------------------------------------------
def _read_beir(folder: Path) -> tuple[list[Doc], list[Query], dict[str, dict[str, int]]]:
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        docs = [
            Doc(d["_id"], d.get("text") or "", d.get("title") or "") for d in map(json.loads, f)
        ]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [Query(d["_id"], d["text"]) for d in map(json.loads, f)]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            if line.strip():
                qid, did, rel = line.rstrip("\r\n").split("\t")
                qrels.setdefault(qid, {})[did] = int(rel)
    return docs, queries, qrels


@pytest.mark.slow
def test_scifact_matches_pyserini_flat() -> None:
    import ir_measures
    from ir_measures import R, nDCG

    folder = SHARED_DATA / "scifact"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (the shared test collections live next to the repo)")
    docs, queries, qrels = _read_beir(folder)
    queries = [q for q in queries if q.query_id in qrels]
    enc = BM25Encoder()
    d = encode(enc, docs)
    scores = (enc.encode_queries(queries) @ d.T).toarray()
    run: dict[str, dict[str, float]] = {}
    for row, q in zip(scores, queries, strict=True):
        top = np.argsort(-row, kind="stable")[:1001]
        run[q.query_id] = {
            docs[j].doc_id: float(row[j])
            for j in top
            if row[j] > 0 and docs[j].doc_id != q.query_id
        }
    agg = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
    # Pyserini's Lucene BM25 "flat" index: 0.6789 / 0.9253
    assert agg[nDCG @ 10] >= 0.670
    assert agg[R @ 100] >= 0.90


def test_queries_may_be_plain_strings_or_id_text_pairs() -> None:
    enc = plain_encoder()
    encode(enc, [Doc("1", "cat dog"), Doc("2", "dog bird")])
    want = enc.encode_queries([Query("q", "cat dog")])
    assert (enc.encode_queries(["cat dog"]) != want).nnz == 0
    assert (enc.encode_queries([("q", "cat dog")]) != want).nnz == 0
    with pytest.raises(TypeError, match="a query must be"):
        enc.encode_queries([1])

    class Record:  # e.g. an ir_datasets query: three fields and a .text
        def __init__(self, query_id, text, extra):
            self.query_id, self.text, self.extra = query_id, text, extra

    assert (enc.encode_queries([Record("q", "cat dog", [])]) != want).nnz == 0
    with pytest.raises(TypeError, match="not one string"):
        enc.encode_queries("cat dog")
