"""BM25 as a sparse encoder: doc vectors hold Lucene 8+ BM25 impacts, query vectors term counts.

For a query ``q`` and doc ``d`` the dot product ``q . d`` is Lucene's BM25 score of a
``BooleanQuery`` of SHOULD term clauses (Anserini's bag-of-words query: one clause per distinct
term, boosted by its count)::

    impact(t, d) = idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t)       = ln(1 + (N - df + 0.5) / (df + 0.5))

where ``N`` is the number of docs with at least one term (Lucene's ``docCount``), ``avgdl`` the
total number of terms over ``N`` (``sumTotalTermFreq / docCount``) and ``dl`` the doc's number of
terms after stop-word removal, rounded down, with ``lucene_norms=True``, to the value Lucene keeps
in its one-byte norm (:func:`int_to_byte4` then :func:`byte4_to_int`; exact below 24, then 4
significant bits).
"""

from __future__ import annotations

import itertools
import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.encoders.analyzer import Analyzer
from irbench.errors import ConfigError, DataError, IrbenchError
from irbench.types import Doc, Query, RowBlocks, query_texts

__all__ = [
    "FORMAT_VERSION",
    "LENGTH_TABLE",
    "BM25Encoder",
    "byte4_to_int",
    "int_to_byte4",
    "lucene_doc_length",
]

#: Up to this many queries, encode_queries builds rows with dicts; above, with numpy.
SMALL_BATCH = 16

#: Version of the vectors and of the saved folder; bump when either changes.
FORMAT_VERSION = 1

QUERY_WEIGHTINGS = ("count", "binary")


# -- org.apache.lucene.util.SmallFloat --------------------------------------------------------------
def _long_to_int4(i: int) -> int:
    """``SmallFloat.longToInt4``: a 4-bit-mantissa float (3 stored bits + implicit 1)."""
    if i < 0:
        raise ValueError(f"only supports positive values, got {i}")
    num_bits = i.bit_length()  # 64 - Long.numberOfLeadingZeros(i)
    if num_bits < 4:
        return i  # subnormal value
    shift = num_bits - 4
    encoded = (i >> shift) & 0x07  # keep the 4 most significant bits, drop the implicit one
    return encoded | ((shift + 1) << 3)  # shift + 1: 0 is reserved for subnormal values


def _int4_to_long(i: int) -> int:
    """``SmallFloat.int4ToLong``."""
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_MAX_INT4 = _long_to_int4(2**31 - 1)  # 231
_NUM_FREE_VALUES = 255 - _MAX_INT4  # 24


def int_to_byte4(i: int) -> int:
    """``SmallFloat.intToByte4`` as an unsigned byte (0..255): how Lucene stores a doc length."""
    if i < 0 or i > 2**31 - 1:
        raise ValueError(f"only supports values in [0, 2^31 - 1], got {i}")
    if i < _NUM_FREE_VALUES:
        return i
    return _NUM_FREE_VALUES + _long_to_int4(i - _NUM_FREE_VALUES)


def byte4_to_int(b: int) -> int:
    """``SmallFloat.byte4ToInt`` of an unsigned byte (0..255)."""
    b &= 0xFF
    if b < _NUM_FREE_VALUES:
        return b
    return _NUM_FREE_VALUES + _int4_to_long(b - _NUM_FREE_VALUES)


#: ``BM25Similarity.LENGTH_TABLE``: the doc length each norm byte decodes to (increasing).
LENGTH_TABLE = np.array([byte4_to_int(i) for i in range(256)], dtype=np.int64)


def lucene_doc_length(lengths: np.ndarray) -> np.ndarray:
    """``byte4ToInt(intToByte4(dl))`` for an array of doc lengths (the largest table value <= dl).

    intToByte4 truncates to 4 significant bits, so the decoded value is the largest entry of the
    increasing :data:`LENGTH_TABLE` not above ``dl``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > 2**31 - 1):
        raise ValueError("doc lengths must lie in [0, 2^31 - 1]")
    return LENGTH_TABLE[np.searchsorted(LENGTH_TABLE, lengths, side="right") - 1]


# -- the encoder ------------------------------------------------------------------------------------
class BM25Encoder:
    """Lucene BM25 as a :class:`~irbench.types.SparseEncoder`.

    ``encode_corpus`` makes one analysis pass over the docs, then fixes the vocabulary (term ids in
    sorted term order) and yields float32 CSR impact batches of ``batch_size`` rows;
    ``encode_queries`` weighs each in-vocabulary query term by its count (``"count"``, Lucene's
    BooleanQuery) or 1 (``"binary"``). Extra keyword arguments are ignored (config keys meant for
    other components).
    """

    kind = "sparse"

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        stemmer: str = "porter",
        stopwords: str | Sequence[str] | None = "lucene",
        lucene_norms: bool = True,
        query_weighting: str = "count",
        name: str = "bm25",
        batch_size: int = 10000,
        **_: Any,
    ):
        for key, value in (("k1", k1), ("b", b)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"encoder.{key}: must be a number, got {value!r}")
        if not k1 >= 0:
            raise ConfigError(f"encoder.k1: must be >= 0, got {k1!r}")
        if not 0 <= b <= 1:
            raise ConfigError(f"encoder.b: must be in [0, 1], got {b!r}")
        if query_weighting not in QUERY_WEIGHTINGS:
            raise ConfigError(
                f"encoder.query_weighting: unknown value {query_weighting!r}; "
                f"use one of {QUERY_WEIGHTINGS}"
            )
        if int(batch_size) < 1:
            raise ConfigError(f"encoder.batch_size: must be >= 1, got {batch_size!r}")
        if stopwords is not None and not isinstance(stopwords, str):
            stopwords = [str(w) for w in stopwords]  # e.g. an OmegaConf ListConfig
        self.k1 = float(k1)
        self.b = float(b)
        self.stemmer = stemmer
        self.stopwords = "none" if stopwords is None else stopwords
        if not isinstance(lucene_norms, bool):
            raise ConfigError(f"encoder.lucene_norms: expected true or false, got {lucene_norms!r}")
        self.lucene_norms = lucene_norms
        self.query_weighting = query_weighting
        self.name = name
        self.batch_size = int(batch_size)
        self.analyzer = Analyzer(stemmer=stemmer, stopwords=self.stopwords)
        self._reset()

    def _reset(self) -> None:
        self.terms: list[str] = []
        self._vocab: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int64)
        self.n_docs = 0  # docs seen, empty ones included
        self.doc_count = 0  # docs with at least one term: Lucene's docCount, the N of idf
        self.sum_total_tf = 0  # terms over all docs: Lucene's sumTotalTermFreq
        self.avgdl = 0.0
        self._fitted = False

    # -- SparseEncoder -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.terms)

    def config_key(self) -> dict[str, Any]:
        return {
            "encoder": "bm25",
            "format": FORMAT_VERSION,
            "k1": self.k1,
            "b": self.b,
            "stemmer": self.stemmer,
            "stopwords": self.analyzer.config()["stopwords"],
            "lucene_norms": self.lucene_norms,
            "query_weighting": self.query_weighting,
            "unicode": unicodedata.unidata_version,  # the tokenizer's character classes
        }

    def idf(self) -> np.ndarray:
        """``ln(1 + (N - df + 0.5) / (df + 0.5))`` per term id (float64)."""
        df = self.df.astype(np.float64)
        return np.log1p((self.doc_count - df + 0.5) / (df + 0.5))

    def encode_corpus(self, docs: Iterable[Doc]) -> Iterator[sp.csr_matrix]:
        """Analyse every doc once, fix the vocabulary, then yield impact batches in corpus order."""
        yield from self.corpus_blocks(docs).blocks()

    def corpus_blocks(self, docs: Iterable[Doc]) -> RowBlocks:
        """Analyse every doc once and fix the vocabulary; the impact batches (``batch_size``
        rows, corpus order) are then computed again on each read of the returned
        :class:`~irbench.types.RowBlocks` from the term counts kept in memory (6 bytes per
        posting), so an index builds without the weighted matrix ever being held whole."""
        self._reset()
        provisional: dict[str, int] = {}  # term -> id in first-seen order
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (indptr, ids, tf)
        lengths: list[np.ndarray] = []
        it = iter(docs)
        while batch := list(itertools.islice(it, self.batch_size)):
            term_lists = self.analyzer.analyze_many([d.full_text() for d in batch])
            chunk, dl = _count_terms(term_lists, provisional)
            chunks.append(chunk)
            lengths.append(dl)
        remap = self._finalize_vocabulary(provisional, chunks, lengths)
        for i, (indptr, ids, tf) in enumerate(chunks):  # final ids, sorted within each row
            chunks[i] = _sorted_rows(indptr, remap[ids], tf, self.vocab_size)
        idf = self.idf()

        def blocks() -> Iterator[sp.csr_matrix]:
            for (indptr, ids, tf), dl in zip(chunks, lengths, strict=True):
                yield self._impacts(indptr, ids, tf, dl, idf)

        return RowBlocks(blocks, self.vocab_size)

    def _finalize_vocabulary(
        self,
        provisional: dict[str, int],
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        lengths: list[np.ndarray],
    ) -> np.ndarray:
        """Fix term ids in sorted order and the collection statistics; returns provisional ->
        final id."""
        self.terms = sorted(provisional)
        self._vocab = {t: i for i, t in enumerate(self.terms)}
        remap = np.empty(len(self.terms), dtype=np.int32)
        remap[np.fromiter(provisional.values(), np.int64, len(provisional))] = np.fromiter(
            map(self._vocab.__getitem__, provisional), np.int32, len(provisional)
        )
        df = np.zeros(len(self.terms), dtype=np.int64)
        for _, ids, _ in chunks:
            df += np.bincount(ids, minlength=len(df))
        self.df = np.zeros_like(df)
        self.df[remap] = df
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.n_docs = int(all_lengths.size)
        self.doc_count = int(np.count_nonzero(all_lengths))
        self.sum_total_tf = int(all_lengths.sum())
        # Lucene: sumTotalTermFreq / (double) docCount (then rounded to a float; kept double here)
        self.avgdl = self.sum_total_tf / self.doc_count if self.doc_count else 0.0
        self._fitted = True
        return remap

    def _impacts(
        self, indptr: np.ndarray, ids: np.ndarray, tf: np.ndarray, dl: np.ndarray, idf: np.ndarray
    ) -> sp.csr_matrix:
        """Impact rows from term counts whose ids are final and sorted within each row."""
        n = len(dl)
        if len(ids) == 0:
            return sp.csr_matrix((n, self.vocab_size), dtype=np.float32)
        tf = tf.astype(np.float64)
        length = lucene_doc_length(dl) if self.lucene_norms else dl
        norm = self.k1 * (1.0 - self.b + self.b * length.astype(np.float64) / self.avgdl)
        norm_per_nnz = np.repeat(norm, np.diff(indptr))
        impact = idf[ids] * tf / (tf + norm_per_nnz)
        out = sp.csr_matrix((impact.astype(np.float32), ids, indptr), shape=(n, self.vocab_size))
        out.has_sorted_indices = True
        return out

    def encode_queries(self, queries: Sequence[Query]) -> sp.csr_matrix:
        """One row per query: in-vocabulary terms weighted by count (or 1); others dropped."""
        if not self._fitted:
            raise IrbenchError(
                "BM25Encoder has no vocabulary: run encode_corpus(docs) or load(path) first"
            )
        term_lists = self.analyzer.analyze_many(query_texts(queries))
        if len(term_lists) <= SMALL_BATCH:
            out = self._rows_small(term_lists)
        else:
            out = self._rows_large(term_lists)
        out.has_sorted_indices = True
        return out

    def _rows_small(self, term_lists: list[list[str]]) -> sp.csr_matrix:
        """CSR rows for a few queries: per-row dicts (numpy's per-call overhead dominates)."""
        get = self._vocab.get
        binary = self.query_weighting == "binary"
        indices: list[int] = []
        data: list[int] = []
        indptr = [0]
        for terms in term_lists:
            counts: dict[int, int] = {}
            for term in terms:
                tid = get(term)
                if tid is not None:
                    counts[tid] = counts.get(tid, 0) + 1
            ids = sorted(counts)  # canonical CSR order: term ids ascending within a row
            indices.extend(ids)
            data.extend([1] * len(ids) if binary else [counts[t] for t in ids])
            indptr.append(len(indices))
        return sp.csr_matrix(
            (
                np.array(data, dtype=np.float32),
                np.array(indices, dtype=np.int32),
                np.array(indptr, dtype=np.int32),
            ),
            shape=(len(term_lists), self.vocab_size),
        )

    def _rows_large(self, term_lists: list[list[str]]) -> sp.csr_matrix:
        """CSR rows for many queries: one vectorised pass over all terms."""
        n = len(term_lists)
        lengths = np.fromiter(map(len, term_lists), dtype=np.int64, count=n)
        flat = itertools.chain.from_iterable(term_lists)
        ids = np.fromiter(map(self._vocab.get, flat, itertools.repeat(-1)), dtype=np.int64)
        rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
        known = ids >= 0
        width = max(self.vocab_size, 1)
        keys = rows[known] * width + ids[known]
        keys.sort()  # canonical CSR order: (row, term id)
        if len(keys):
            first = np.empty(len(keys), dtype=bool)
            first[0] = True
            np.not_equal(keys[1:], keys[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            counts = np.diff(np.append(starts, len(keys)))
            keys = keys[starts]
        else:
            counts = np.zeros(0, dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(keys // width, minlength=n), out=indptr[1:])
        data = np.ones(len(keys), np.float32) if self.query_weighting == "binary" else counts
        return sp.csr_matrix(
            (data.astype(np.float32), (keys % width).astype(np.int32), indptr),
            shape=(n, self.vocab_size),
        )

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``bm25.json`` (parameters, N, avgdl...), ``terms.txt`` and ``df.npy`` to a folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "k1": self.k1,
            "b": self.b,
            "stemmer": self.stemmer,
            "stopwords": self.analyzer.config()["stopwords"],
            "lucene_norms": self.lucene_norms,
            "query_weighting": self.query_weighting,
            "unicode": unicodedata.unidata_version,
            "N": self.doc_count,  # idf's N: docs with at least one term (Lucene's docCount)
            "n_docs": self.n_docs,
            "doc_count": self.doc_count,
            "sum_total_tf": self.sum_total_tf,
            "avgdl": self.avgdl,
            "vocab_size": self.vocab_size,
        }
        if any("\n" in t for t in self.terms):  # cannot happen with the analyzer's classes
            raise IrbenchError("BM25Encoder.save: a term contains a newline")
        (path / "terms.txt").write_text("\n".join(self.terms), encoding="utf-8")
        np.save(path / "df.npy", self.df)
        (path / "bm25.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def load(self, path: Path) -> None:
        """Restore parameters and vocabulary from a folder written by :meth:`save`."""
        path = Path(path)
        meta_path = path / "bm25.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("no saved BM25 encoder here (bm25.json missing)", meta_path) from None
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", meta_path, e.lineno) from None
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(
                f"format {meta.get('format')!r} is not {FORMAT_VERSION}; re-encode the corpus",
                meta_path,
            )
        try:
            text = (path / "terms.txt").read_text(encoding="utf-8")
            df = np.load(path / "df.npy")
        except FileNotFoundError as e:
            raise DataError("missing file of a saved BM25 encoder; re-encode", e.filename) from None
        terms = text.split("\n") if text else []
        if len(terms) != meta["vocab_size"] or len(df) != len(terms):
            raise DataError(
                f"terms.txt has {len(terms)} terms and df.npy {len(df)}, bm25.json says "
                f"{meta['vocab_size']}; re-encode",
                path,
            )
        self.__init__(  # type: ignore[misc]
            k1=meta["k1"],
            b=meta["b"],
            stemmer=meta["stemmer"],
            stopwords=meta["stopwords"],
            lucene_norms=meta["lucene_norms"],
            query_weighting=meta["query_weighting"],
            name=meta.get("name", self.name),
            batch_size=self.batch_size,
        )
        self.terms = terms
        self._vocab = {t: i for i, t in enumerate(terms)}
        self.df = df.astype(np.int64)
        self.n_docs = int(meta["n_docs"])
        self.doc_count = int(meta["doc_count"])
        self.sum_total_tf = int(meta["sum_total_tf"])
        self.avgdl = float(meta["avgdl"])
        self._fitted = True

    def __repr__(self) -> str:
        return (
            f"BM25Encoder(k1={self.k1}, b={self.b}, stemmer={self.stemmer!r}, "
            f"stopwords={self.analyzer.stopwords_name!r}, lucene_norms={self.lucene_norms}, "
            f"query_weighting={self.query_weighting!r}, vocab_size={self.vocab_size})"
        )


def _count_terms(
    term_lists: list[list[str]], vocab: dict[str, int]
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Term-frequency CSR pieces of a batch over provisional ids (new terms are added to vocab)."""
    n = len(term_lists)
    lengths = np.fromiter(map(len, term_lists), dtype=np.int64, count=n)
    flat = list(itertools.chain.from_iterable(term_lists))
    for t in set(flat).difference(vocab):
        vocab[t] = len(vocab)
    ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    keys, tf = np.unique((rows << 32) | ids, return_counts=True)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys >> 32, minlength=n), out=indptr[1:])
    tf_dtype = np.uint16 if tf.size == 0 or tf.max() <= np.iinfo(np.uint16).max else np.int64
    ids = (keys & 0xFFFFFFFF).astype(np.int32)
    return (indptr, ids, tf.astype(tf_dtype)), lengths


def _sorted_rows(
    indptr: np.ndarray, ids: np.ndarray, tf: np.ndarray, n_terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR pieces with the ids sorted within each row (they were remapped to the final order)."""
    m = sp.csr_matrix((tf, ids, indptr), shape=(len(indptr) - 1, n_terms))
    m.sort_indices()
    return m.indptr, m.indices, m.data
