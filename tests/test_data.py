"""Tests for irbench.data: strict readers, the three adapters, fingerprints, make_dataset."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irbench.data import (
    BeirDataset,
    IrdsDataset,
    TrecDataset,
    check_qrels,
    file_fingerprint,
    make_dataset,
    queries_with_qrels,
    read_beir_qrels,
    read_beir_queries,
    read_corpus,
    read_corpus_jsonl,
    read_corpus_tsv,
    read_jsonl,
    read_qrels,
    read_qrels_file,
    read_topics,
    read_topics_sgml,
    read_topics_tsv,
    read_trec_qrels,
)
from irbench.data import fingerprint as fp
from irbench.errors import DataError
from irbench.types import Dataset, Doc, Qrel, Query

DATA = Path(__file__).parent / "data"
BEIR = DATA / "beir_tiny"
TREC = DATA / "trec_tiny"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.cache from tests."""
    memo = tmp_path / "fp-cache" / "fingerprints.json"
    monkeypatch.setenv("IRBENCH_FP_CACHE", str(memo))
    return memo


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def assert_where(err: pytest.ExceptionInfo[DataError], name: str, line: int) -> None:
    msg = str(err.value)
    assert name in msg and f":{line}:" in msg, msg
    assert err.value.line == line


# --------------------------------------------------------------------------- generic readers


@pytest.mark.parametrize(
    "content, line, needle",
    [
        (b'{"_id": "a"}\n{"_id": "b",\n', 2, "invalid JSON"),
        (b'{"_id": "a"}\n\n["_id", "b"]\n', 3, "JSON object"),
        (b'{"_id": "a"}\n{"id": "b"}\n', 2, "missing key '_id'"),
        (b'{"_id": 7}\n', 1, "must be a string"),
        (b'{"_id": "a"}\n{"_id": "caf\xe9"}\n', 2, "UTF-8"),
        (b'{"_id": "a"}\r\n' + b"[" * 100_000 + b"\r\n", 2, "invalid JSON"),
    ],
)
def test_read_jsonl_malformed(tmp_path: Path, content: bytes, line: int, needle: str) -> None:
    path = write(tmp_path / "bad.jsonl", content)
    with pytest.raises(DataError, match=needle) as err:
        list(read_jsonl(path))
    assert_where(err, "bad.jsonl", line)


def test_read_jsonl_bom_crlf_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.jsonl", b'\xef\xbb\xbf{"_id": "a"}\r\n\r\n{"_id": "b", "x": 1}\r\n')
    assert [o["_id"] for o in read_jsonl(path)] == ["a", "b"]


def test_missing_file_names_expected_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        list(read_jsonl(tmp_path / "nope.jsonl"))
    assert str(tmp_path / "nope.jsonl") in str(err.value)


def test_gzip_transparent_and_truncated(tmp_path: Path) -> None:
    raw = (BEIR / "corpus.jsonl").read_bytes()
    gz = write(tmp_path / "corpus.jsonl.gz", gzip.compress(raw))
    assert list(read_corpus_jsonl(gz)) == list(read_corpus_jsonl(BEIR / "corpus.jsonl"))
    cut = write(tmp_path / "cut.jsonl.gz", gzip.compress(raw * 50)[:-40])
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        list(read_corpus_jsonl(cut))
    assert "cut.jsonl.gz" in str(err.value)


# --------------------------------------------------------------------------- BEIR files


def test_beir_corpus_fields_and_empty_texts() -> None:
    docs = list(read_corpus_jsonl(BEIR / "corpus.jsonl"))
    assert docs == [
        Doc("d1", "Learned sparse vectors for retrieval.", "Sparse retrieval"),
        Doc("d2", "A doc without a title.", ""),
        Doc("d3", "", "Null text"),
        Doc("d4", "", ""),
    ]


@pytest.mark.parametrize(
    "line2, needle",
    [
        ('{"_id": "b", "title": "t"}', "missing text key"),
        ('{"_id": "b", "text": 3}', "'text' must be a string"),
        ('{"_id": "b", "text": "x", "title": ["t"]}', "'title' must be a string"),
        ('{"_id": "", "text": "x"}', "non-empty string"),
        ('{"text": "x"}', "missing id key"),
        ('{"_id": "b c", "text": "x"}', "'_id' 'b c' contains whitespace"),
        ('{"_id": "b", "text": "\\ud800"}', "'text' contains a lone surrogate"),
    ],
)
def test_beir_corpus_malformed(tmp_path: Path, line2: str, needle: str) -> None:
    path = write(tmp_path / "corpus.jsonl", '{"_id": "a", "text": ""}\n' + line2 + "\n")
    with pytest.raises(DataError, match=needle) as err:
        list(read_corpus_jsonl(path))
    assert_where(err, "corpus.jsonl", 2)


def test_corpus_jsonl_alternative_keys() -> None:
    docs = list(read_corpus(TREC / "corpus.jsonl"))
    assert docs == [
        Doc("D1", "crime syndicates across borders"),
        Doc("D2", "weather report", "Weather"),
        Doc("D3", "polio vaccine"),
    ]
    assert list(read_corpus(TREC / "corpus.tsv")) == [Doc(d.doc_id, d.text) for d in docs]


def test_beir_queries_duplicate_and_empty(tmp_path: Path) -> None:
    assert list(read_beir_queries(BEIR / "queries.jsonl"))[2] == Query("q1", "")
    lines = ['{"_id": "1", "text": "a"}', '{"_id": "2", "text": "b"}', '{"_id": "1", "text": "c"}']
    path = write(tmp_path / "queries.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match="duplicate query id '1' \\(first on line 1\\)") as err:
        list(read_beir_queries(path))
    assert_where(err, "queries.jsonl", 3)


def test_beir_qrels_crlf() -> None:
    assert (BEIR / "qrels" / "test.tsv").read_bytes().count(b"\r\n") == 4
    assert list(read_beir_qrels(BEIR / "qrels" / "test.tsv")) == [
        Qrel("q1", "d1", 1),
        Qrel("q2", "d2", 2),
        Qrel("q2", "d1", 0),
    ]


@pytest.mark.parametrize(
    "row, needle",
    [
        ("q1\td1", "expected 3 tab-separated columns"),
        ("q1\td1\t1\textra", "expected 3 tab-separated columns"),
        ("q1 d1 1", "expected 3 tab-separated columns"),
        ("q1\td1\t1.0", "score must be an integer"),
        ("q1\td1\tyes", "score must be an integer"),
        ("q1\t\t1", "corpus-id must be a non-empty string"),
        ("q1\td 1\t1", "corpus-id 'd 1' contains whitespace"),
        ("q0\td0\t1", "duplicate qrel for query 'q0', doc 'd0' \\(first on line 2\\)"),
    ],
)
def test_beir_qrels_malformed(tmp_path: Path, row: str, needle: str) -> None:
    path = write(tmp_path / "test.tsv", f"query-id\tcorpus-id\tscore\r\nq0\td0\t1\r\n{row}\r\n")
    with pytest.raises(DataError, match=needle) as err:
        list(read_beir_qrels(path))
    assert_where(err, "test.tsv", 3)


# --------------------------------------------------------------------------- TREC files


def test_trec_qrels_and_detection() -> None:
    qrels = list(read_trec_qrels(TREC / "qrels.txt"))
    assert qrels[0] == Qrel("301", "D1", 1, "0") and len(qrels) == 3
    assert list(read_qrels(TREC / "qrels.txt")) == qrels
    assert list(read_qrels(BEIR / "qrels" / "test.tsv"))[0] == Qrel("q1", "d1", 1)


@pytest.mark.parametrize(
    "row, needle",
    [
        ("301 0 D9", "expected 4 whitespace-separated columns"),
        ("301 0 D9 high", "relevance must be an integer"),
        ("301 Q0 D1 1", "duplicate qrel"),
    ],
)
def test_trec_qrels_malformed(tmp_path: Path, row: str, needle: str) -> None:
    path = write(tmp_path / "qrels.trec", f"301 0 D1 1\n\n{row}\n")
    with pytest.raises(DataError, match=needle) as err:
        list(read_trec_qrels(path))
    assert_where(err, "qrels.trec", 3)


def test_topics_sgml_title_and_fields() -> None:
    assert list(read_topics(TREC / "topics.sgml")) == [
        Query("301", "International Organized Crime"),
        Query("302", "Poliomyelitis and Post-Polio"),
    ]
    both = list(read_topics_sgml(TREC / "topics.sgml", fields=("title", "desc")))
    assert both[1].text == (
        "Poliomyelitis and Post-Polio Is the disease of Poliomyelitis (polio) under control?"
    )


@pytest.mark.parametrize(
    "text, line, needle",
    [
        ("<top>\n<num> 1\n<title> a\n<top>\n", 4, "missing </top>"),
        ("<top>\n<num> 1\n<title> a\n", 1, "never closed"),
        ("<top>\n<title> a\n</top>\n", 1, "without a <num>"),
        ("<top>\n<num> 1\n<desc> a\n</top>\n", 1, "has no <title>"),
        ("<top>\n<num> 1\n<title> a\n</top>\nstray words\n", 5, "text outside <top>"),
        (
            "<top><num> 1 <title> a </top>\n<top><num> 1 <title> b </top>\n",
            2,
            "duplicate query id '1'",
        ),
    ],
)
def test_topics_sgml_malformed(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path / "topics.301", text)
    with pytest.raises(DataError, match=needle) as err:
        list(read_topics_sgml(path))
    assert_where(err, "topics.301", line)


def test_topics_tsv(tmp_path: Path) -> None:
    assert list(read_topics(TREC / "topics.tsv"))[1] == Query("302", "polio")
    path = write(tmp_path / "q.tsv", "qid\ttext\n1\t\n2\ttwo\n2\tagain\n")
    it = read_topics_tsv(path)
    assert next(it) == Query("1", "") and next(it) == Query("2", "two")
    with pytest.raises(DataError, match="duplicate query id '2'") as err:
        next(it)
    assert_where(err, "q.tsv", 4)
    bad = write(tmp_path / "bad.tsv", "1\tone\n2 two\n")
    with pytest.raises(DataError, match="expected 2 tab-separated") as err:
        list(read_topics_tsv(bad))
    assert_where(err, "bad.tsv", 2)


def test_corpus_tsv_header_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "collection.tsv", "id\ttext\n7\tseven\n8\t\n")
    assert list(read_corpus_tsv(path)) == [Doc("7", "seven"), Doc("8", "")]
    bad = write(tmp_path / "c.tsv", "7\tseven\n8\ttitle\ttext\n")
    with pytest.raises(DataError, match="expected 2") as err:
        list(read_corpus_tsv(bad))
    assert_where(err, "c.tsv", 2)


# --------------------------------------------------------------------------- fingerprints


def test_file_fingerprint_memo(tmp_path: Path, _fp_cache: Path, monkeypatch: pytest.MonkeyPatch):
    import hashlib

    path = write(tmp_path / "corpus.jsonl", "x" * 3_000_000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    calls = []
    real = fp.sha256_file
    monkeypatch.setattr(fp, "sha256_file", lambda p: calls.append(p) or real(p))
    assert file_fingerprint(path) == expected and len(calls) == 1
    assert file_fingerprint(path) == expected and len(calls) == 1  # memo hit
    memo = json.loads(_fp_cache.read_text())
    assert memo[os.path.abspath(path)]["sha256"] == expected
    assert not list(_fp_cache.parent.glob("*.tmp"))
    # a same-size edit with the mtime put back (`touch -r`) is still seen (the ctime moved)
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(b"z")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    edited = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_fingerprint(path) == edited != expected and len(calls) == 2
    write(path, "y" * 3_000_001)
    assert file_fingerprint(path) != edited and len(calls) == 3  # size changed: rehash
    _fp_cache.write_text("{not json")  # a corrupt memo is ignored and replaced
    assert file_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads(_fp_cache.read_text())


def test_file_fingerprint_unwritable_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = write(tmp_path / "blocker", "a file, not a directory")
    monkeypatch.setenv("IRBENCH_FP_CACHE", str(blocker / "fingerprints.json"))
    path = write(tmp_path / "f.txt", "abc")
    assert file_fingerprint(path).startswith("ba7816bf")
    with pytest.raises(DataError, match="does not exist"):
        file_fingerprint(tmp_path / "missing.jsonl")


# --------------------------------------------------------------------------- adapters


def test_beir_dataset() -> None:
    ds = BeirDataset(BEIR)
    assert isinstance(ds, Dataset) and ds.name == "beir_tiny"
    assert [q.query_id for q in ds.queries_iter()] == ["q2", "q1"]  # qrels only, file order
    assert ds.docs_count() == 4 and len(list(ds.docs_iter())) == 4
    assert len(list(ds.qrels_iter())) == 3
    assert set(ds.fingerprint()) == {"docs", "queries", "qrels"}
    dev = BeirDataset(BEIR, split="dev", name="tiny")
    assert [q.query_id for q in dev.queries_iter()] == ["q3"]
    assert dev.fingerprint()["qrels"] != ds.fingerprint()["qrels"]
    assert dev.fingerprint()["docs"] == ds.fingerprint()["docs"]


def test_beir_dataset_missing_split_and_folder(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match="no qrels for split 'train' \\(splits present: dev, test\\)"
    ):
        BeirDataset(BEIR, split="train")
    with pytest.raises(DataError, match="BEIR folder not found"):
        BeirDataset(tmp_path / "nowhere")
    write(tmp_path / "corpus.jsonl", "")
    with pytest.raises(DataError, match="queries.jsonl"):
        BeirDataset(tmp_path)


def test_beir_dataset_gz(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        write(tmp_path / f"{name}.gz", gzip.compress((BEIR / name).read_bytes()))
    gz, plain = BeirDataset(tmp_path), BeirDataset(BEIR)
    assert list(gz.docs_iter()) == list(plain.docs_iter())
    assert list(gz.queries_iter()) == list(plain.queries_iter())
    assert list(gz.qrels_iter()) == list(plain.qrels_iter())
    assert gz.docs_count() == 4


def test_trec_dataset(tmp_path: Path) -> None:
    ds = TrecDataset(TREC / "corpus.tsv", TREC / "topics.sgml", TREC / "qrels.txt")
    assert isinstance(ds, Dataset) and ds.name == "trec_tiny"
    assert [q.text for q in ds.queries_iter()][0] == "International Organized Crime"
    assert ds.docs_count() == 3 and len(list(ds.qrels_iter())) == 3
    assert ds.fingerprint()["topic_fields"] == "title"
    no_qrels = TrecDataset(TREC / "corpus.jsonl", TREC / "topics.tsv", name="x")
    assert list(no_qrels.qrels_iter()) == [] and no_qrels.fingerprint()["qrels"] == ""
    with_header = write(tmp_path / "collection.tsv", "docid\ttext\n1\ta\n")
    assert TrecDataset(with_header, TREC / "topics.tsv").docs_count() == 1
    with pytest.raises(DataError, match="does not exist"):
        TrecDataset(TREC / "corpus.tsv", TREC / "missing.txt")


# --------------------------------------------------------------------------- ir_datasets


class FakeDoc(NamedTuple):
    doc_id: str
    text: str
    title: str


class FakeBodyDoc(NamedTuple):
    doc_id: str
    headline: str
    body: str

    def default_text(self) -> str:
        return f"{self.headline} {self.body}"


class FakePlainDoc(NamedTuple):
    doc_id: str
    a: str
    n: int
    b: str


class FakeTopic(NamedTuple):
    query_id: str
    title: str
    description: str


class FakeQrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int
    iteration: str


class FakeIrds:
    def __init__(self, docs: list[Any], fail: BaseException | None = None):
        self.docs, self.fail = docs, fail

    def has_docs(self) -> bool:
        return True

    def has_queries(self) -> bool:
        return True

    def has_qrels(self) -> bool:
        return True

    def docs_iter(self):
        if self.fail is not None:
            raise self.fail
        return iter(self.docs)

    def queries_iter(self):
        return iter([FakeTopic("301", "crime", "long description")])

    def qrels_iter(self):
        return iter([FakeQrel("301", "D1", 2, "Q0")])

    def docs_count(self) -> int:
        return len(self.docs)


@pytest.fixture
def fake_irds(monkeypatch: pytest.MonkeyPatch):
    import ir_datasets

    registry: dict[str, FakeIrds] = {}

    def load(irds_id: str) -> FakeIrds:
        if irds_id not in registry:
            raise KeyError(irds_id)
        return registry[irds_id]

    monkeypatch.setattr(ir_datasets, "load", load)
    return registry


def test_irds_mapping(fake_irds: dict) -> None:
    fake_irds["fake/test"] = FakeIrds(
        [
            FakeDoc("D1", "body", "Head"),
            FakeBodyDoc("D2", "h", "b"),
            FakePlainDoc("D3", "x", 1, "y"),
        ]
    )
    ds = IrdsDataset("fake/test")
    assert isinstance(ds, Dataset) and ds.name == "fake/test"
    assert list(ds.docs_iter()) == [Doc("D1", "body", "Head"), Doc("D2", "h b"), Doc("D3", "x y")]
    assert list(ds.queries_iter()) == [Query("301", "crime")]
    assert list(ds.qrels_iter()) == [Qrel("301", "D1", 2, "Q0")]
    assert ds.docs_count() == 3
    import ir_datasets

    fpr = ds.fingerprint()
    assert fpr["irds_id"] == "fake/test" and fpr["ir_datasets"] == ir_datasets.__version__
    assert {"docs", "queries", "qrels"} <= set(fpr)


def test_irds_unknown_id(fake_irds: dict) -> None:
    with pytest.raises(DataError, match="unknown ir_datasets id 'beir/scifac'.*beir/scifact"):
        IrdsDataset("beir/scifac")


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("All download sources failed", ["long\nlist"]),
        ConnectionError("Max retries exceeded\nwith url"),
    ],
)
def test_irds_download_failure(fake_irds: dict, error: BaseException) -> None:
    fake_irds["fake/offline"] = FakeIrds([], fail=error)
    ds = IrdsDataset("fake/offline")
    with pytest.raises(DataError) as err:
        list(ds.docs_iter())
    msg = str(err.value)
    assert "could not download 'fake/offline'" in msg and "dataset.path=" in msg
    assert "\n" not in msg


def test_make_dataset_irds_and_lazy_import(fake_irds: dict) -> None:
    fake_irds["fake/test"] = FakeIrds([FakeDoc("D1", "t", "")])
    assert isinstance(make_dataset("f", irds_id="fake/test"), IrdsDataset)
    code = "import irbench.data, sys; print('ir_datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- make_dataset & checks


def test_make_dataset_selection() -> None:
    ds = make_dataset("tiny", irds_id="no/such/id", path=str(BEIR), split="dev", extra=1)
    assert isinstance(ds, BeirDataset) and ds.name == "tiny" and ds.split == "dev"
    trec = make_dataset("t", corpus=str(TREC / "corpus.tsv"), topics=str(TREC / "topics.tsv"))
    assert isinstance(trec, TrecDataset)
    with pytest.raises(DataError, match="set dataset.topics"):
        make_dataset("t", corpus=str(TREC / "corpus.tsv"))
    with pytest.raises(DataError, match="dataset.path.*dataset.irds_id"):
        make_dataset("empty")


def test_check_qrels_and_queries_with_qrels() -> None:
    ds = TrecDataset(TREC / "corpus.tsv", TREC / "topics.tsv", BEIR / "qrels" / "test.tsv")
    report = check_qrels(ds, {"d1"})
    assert report == {
        "queries": 2,
        "qrels_rows": 3,
        "qrels_queries": 2,
        "queries_without_qrels": 2,
        "qrels_unknown_query_rows": 3,
        "qrels_unknown_doc_rows": 1,
        "queries_with_unknown_docs": 1,
    }
    beir = BeirDataset(BEIR)
    assert check_qrels(beir, {d.doc_id for d in beir.docs_iter()})["qrels_unknown_doc_rows"] == 0
    full = TrecDataset(BEIR / "corpus.jsonl", BEIR / "queries.jsonl", BEIR / "qrels" / "test.tsv")
    assert [q.query_id for q in queries_with_qrels(full)] == ["q2", "q1"]
    assert check_qrels(full, set())["queries_without_qrels"] == 2
    rows = read_qrels_file(TREC / "qrels.txt")  # plain qrels: no query-side counts
    assert check_qrels(rows, {"D1", "D2"}) == {
        "qrels_rows": 3,
        "qrels_queries": 2,
        "qrels_unknown_doc_rows": 1,
        "queries_with_unknown_docs": 1,
    }


# --------------------------------------------------------------------------- shared real data

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared test collections not found at {SHARED}"
)


@needs_shared
@pytest.mark.parametrize(
    "name, split, docs, queries, rows, empty_docs",
    [
        ("scifact", "test", 5183, 300, 339, 0),
        ("scifact", "train", 5183, 809, 919, 0),
        ("vaswani", "test", 11429, 93, 2083, 0),
        ("cranfield", "test", 1400, 225, 1837, 2),
    ],
)
def test_shared_counts(name: str, split: str, docs: int, queries: int, rows: int, empty_docs: int):
    ds = make_dataset(name, path=str(SHARED / name), split=split)
    all_docs = list(ds.docs_iter())
    assert len(all_docs) == ds.docs_count() == docs
    assert sum(not d.text for d in all_docs) == empty_docs
    report = check_qrels(ds, {d.doc_id for d in all_docs})
    assert (report["queries"], report["qrels_rows"]) == (queries, rows)
    assert report["qrels_unknown_doc_rows"] == report["queries_without_qrels"] == 0
    assert len(ds.fingerprint()["docs"]) == 64


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINES = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [b'{"_id": "a", "text": "t"}', b"q\td\t1", b"1 0 d 1", b"\r", b"\xff", b"\x1f\x8b"]
        ),
        st.sampled_from([b"<top>", b"<num> Number: 1", b"<title> t", b"</top>", b"<desc>"]),
        st.text(max_size=30).map(str.encode),
    ),
    max_size=8,
).map(b"\n".join)


def _parse_all(reader, data: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("f.gz" if gz else "f")
        path.write_bytes(gzip.compress(data) if gz else data)
        try:
            list(reader(path))
        except DataError:
            pass


@FUZZ
@given(data=LINES, gz=st.booleans())
def test_fuzz_jsonl_readers(data: bytes, gz: bool) -> None:
    for reader in (read_jsonl, read_corpus_jsonl, read_beir_queries):
        _parse_all(reader, data, gz)


@FUZZ
@given(data=LINES | st.binary(max_size=200), gz=st.booleans())
def test_fuzz_qrels_and_topics_readers(data: bytes, gz: bool) -> None:
    for reader in (read_beir_qrels, read_trec_qrels, read_qrels, read_topics, read_corpus):
        _parse_all(reader, data, gz)
