"""Training examples from any dataset with a train split, or from MS MARCO-style triples.

* **Positives** come from the split's qrels (grade >= ``train.data.min_relevance``).
* **Hard negatives** are mined by an irbench retriever through irbench's own
  ``build_index`` / ``search`` (the index is the same cache entry a normal run uses); the ranked
  hits are cached in ``cache_dir/negatives/`` under a content key (index entry, split's queries
  and qrels, depth). ``retriever`` names an encoder preset (``bm25``, ``splade``...) or ``self``
  (the encoder being trained, as configured).
* **Teacher scores** for distillation are read from a file of ``qid docid score`` lines; the
  query's negatives are then its teacher-scored docs that are not positives.
* **Triples** (``train.data.triples``): ``query <tab> positive <tab> negative`` lines, as texts
  (MS MARCO ``triples.train.small.tsv``) or as ids of the dataset's queries and docs
  (``qidpidtriples``); detected from the first line.

The order of examples is a pure function of ``(seed, position)``: epoch ``e`` visits the
training queries in ``default_rng([seed, e])``'s permutation, and each example draws its
positive and negatives from ``default_rng([seed, e, index])``. Resuming at step ``s`` is
resuming at position ``s * batch_size``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irbench.errors import ConfigError, DataError
from irbench.train.settings import TrainSettings

NEGATIVES_FORMAT = 2  # 2: hits of tied scores in trec_eval's order (doc id descending)


@dataclass
class TrainQuery:
    qid: str
    text: str
    positives: list[str]
    ranked: list[str] = field(default_factory=list)  # miner hits, best first (positives kept)
    negatives: list[str] = field(default_factory=list)  # candidate negatives, best first
    teacher: dict[str, float] | None = None


@dataclass
class Example:
    qid: str
    query: str
    pos: str  # doc id
    negs: list[str]
    teacher: list[float] | None  # positive first


class TrainingData:
    """Training and dev queries, the texts of every doc they use and the qrels grades."""

    def __init__(
        self,
        queries: list[TrainQuery],
        dev: list[TrainQuery],
        docs: dict[str, str],
        qrels: dict[str, dict[str, int]],
        settings: TrainSettings,
        info: dict[str, Any] | None = None,
        dev_qrels: dict[str, dict[str, int]] | None = None,
    ):
        if not queries:
            raise DataError(
                "no training queries with positives (check the split's qrels and "
                "train.data.min_relevance)"
            )
        self.queries = queries
        self.dev = dev
        self.docs = docs
        self.qrels = qrels
        self.dev_qrels = qrels if dev_qrels is None else dev_qrels
        self.s = settings
        self.info = info or {}
        self._perm: dict[int, np.ndarray] = {}
        self._fallback = sorted(docs)

    def __len__(self) -> int:
        return len(self.queries)

    def positives_of(self, qid: str) -> set[str]:
        """The docs graded at least ``train.data.min_relevance`` for ``qid``: never negatives
        (judged non-relevant docs are, like any other)."""
        return positives(self.qrels, qid, self.s.min_relevance)

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.s.seed, epoch]).permutation(len(self))}
        return self._perm[epoch]

    def example(self, position: int) -> Example:
        """The example at a position of the endless, epoch-by-epoch stream."""
        epoch, k = divmod(position, len(self))
        idx = int(self._order(epoch)[k])
        q = self.queries[idx]
        rng = np.random.default_rng([self.s.seed, epoch, idx])
        pos = q.positives[int(rng.integers(len(q.positives)))]
        n = self.s.negatives
        pool = q.negatives
        if len(pool) >= n:
            negs = [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))] if n else []
        else:  # too few mined: fill with docs used elsewhere (random, not relevant)
            negs = list(pool)
            relevant = self.positives_of(q.qid)
            while len(negs) < n and len(self._fallback) > len(relevant) + len(negs):
                d = self._fallback[int(rng.integers(len(self._fallback)))]
                if d not in relevant and d not in negs and d != pos:
                    negs.append(d)
            if len(negs) < n:
                raise DataError(f"query {q.qid}: not enough docs for {n} negatives")
        teacher = None
        if q.teacher is not None:
            teacher = [q.teacher[pos]] + [q.teacher[d] for d in negs]
        return Example(q.qid, q.text, pos, negs, teacher)

    def batch(self, start: int, size: int) -> list[Example]:
        return [self.example(p) for p in range(start, start + size)]


# -- loading ----------------------------------------------------------------------------------------
def positives(qrels: dict[str, dict[str, int]], qid: str, min_relevance: int) -> set[str]:
    """``qid``'s docs graded ``>= min_relevance`` in ``qrels``."""
    return {d for d, g in qrels.get(qid, {}).items() if g >= min_relevance}


def load(cfg: Any, settings: TrainSettings, record: dict[str, Any] | None = None) -> TrainingData:
    """Training data for ``cfg``: the dataset's ``train.data.split`` (or triples), negatives
    mined (and cached) or read from the teacher file, dev queries held out."""
    from irbench.data import make_dataset
    from irbench.pipeline import _component_cfg

    record = record if record is not None else {}
    ds_cfg = _component_cfg(cfg.dataset)
    ds_cfg["split"] = settings.split
    dataset = make_dataset(**ds_cfg)
    if settings.triples:
        return _from_triples(Path(settings.triples), dataset, settings, record)
    qrels: dict[str, dict[str, int]] = {}
    for r in dataset.qrels_iter():
        qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    queries = []
    for q in dataset.queries_iter():
        pos = sorted(d for d, g in qrels.get(q.query_id, {}).items() if g >= settings.min_relevance)
        if pos:
            queries.append(TrainQuery(q.query_id, q.text, pos))
    if settings.max_queries:
        queries = queries[: settings.max_queries]
    if settings.teacher_scores:
        teacher_file = Path(settings.teacher_scores)
        scores = read_teacher_scores(teacher_file)
        kept = []
        for q in queries:
            t = scores.get(q.qid)
            if not t:
                continue
            q.positives = [d for d in q.positives if d in t]
            relevant = positives(qrels, q.qid, settings.min_relevance)
            q.ranked = sorted(t, key=lambda d: (-t[d], d))
            q.negatives = [d for d in q.ranked if d not in relevant]
            q.teacher = t
            if q.positives and q.negatives:
                kept.append(q)
        if not kept:
            raise DataError(
                f"none of its {len(scores)} query ids (e.g. '{min(scores)}') is a query of split "
                f"'{settings.split}' with a scored positive and a scored non-positive; check the "
                "file and train.data.split",
                teacher_file,
            )
        _check_teacher_depth(kept, settings, f"{teacher_file} scores")
        record["teacher_queries"] = len(kept)
        queries = kept
    elif settings.negatives or settings.dev_queries:
        ranked = mine(cfg, dataset, queries, settings, settings.split, record)
        for q in queries:
            relevant = positives(qrels, q.qid, settings.min_relevance)
            q.ranked = ranked.get(q.qid, [])
            q.negatives = [d for d in q.ranked[settings.skip :] if d not in relevant]
        if settings.teacher:
            scores = teacher_scores(cfg, dataset, queries, settings, record)
            for q in queries:
                q.teacher = scores.get(q.qid, {})
            _check_teacher_depth(queries, settings, "the miner's hits (train.negatives.depth)")
    dev: list[TrainQuery] = []
    dev_qrels = None
    if settings.dev_split:
        dev, dev_qrels = _dev_split(cfg, ds_cfg, settings, record)
    if settings.dev_queries:
        if settings.dev_queries >= len(queries):
            raise ConfigError(
                f"train.data.dev_queries={settings.dev_queries} leaves no training queries "
                f"(the split has {len(queries)}); lower it"
            )
        pick = set(
            np.random.default_rng([settings.seed, 7919])
            .choice(len(queries), settings.dev_queries, replace=False)
            .tolist()
        )
        dev = [q for i, q in enumerate(queries) if i in pick]
        queries = [q for i, q in enumerate(queries) if i not in pick]
    needed: set[str] = set()
    for q in queries:
        needed.update(q.positives)
        needed.update(q.negatives[: settings.depth])
    for q in dev:
        needed.update(q.ranked[: settings.eval_depth])
    docs = {d.doc_id: d.full_text() for d in dataset.docs_iter() if d.doc_id in needed}
    missing = sorted(needed - set(docs))
    if missing:
        raise DataError(
            f"{len(missing)} doc ids of the qrels/negatives are not in the corpus (e.g. "
            f"'{missing[0]}')",
            getattr(dataset, "corpus_file", None),
        )
    for q in queries:
        q.negatives = q.negatives[: settings.depth]
    record.update(train_queries=len(queries), dev_queries=len(dev), docs_in_memory=len(docs))
    return TrainingData(queries, dev, docs, qrels, settings, record, dev_qrels)


def _check_teacher_depth(queries: list[TrainQuery], settings: TrainSettings, source: str) -> None:
    """With teacher scores a query's negatives must all be scored: a DataError naming the
    first query with fewer than ``train.negatives.per_query`` of them (the random fill-in of
    :meth:`TrainingData.example` has no teacher score)."""
    n = settings.negatives
    short = [q for q in queries if len(q.negatives[: settings.depth]) < n]
    if short:
        q = short[0]
        raise DataError(
            f"{len(short)} training queries have fewer than train.negatives.per_query={n} "
            f"teacher-scored negatives in {source} (e.g. '{q.qid}' has "
            f"{len(q.negatives[: settings.depth])}); lower per_query or score more docs"
        )


def _dev_split(cfg, ds_cfg, settings, record):
    """Dev queries (with qrels) of another split and their miner hits."""
    from irbench.data import make_dataset

    dataset = make_dataset(**{**ds_cfg, "split": settings.dev_split})
    qrels: dict[str, dict[str, int]] = {}
    for r in dataset.qrels_iter():
        qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    dev = [TrainQuery(q.query_id, q.text, sorted(qrels[q.query_id])) for q in dataset.queries_iter()
           if q.query_id in qrels]  # fmt: skip
    dev_record: dict[str, Any] = {}
    ranked = mine(cfg, dataset, dev, settings, settings.dev_split, dev_record)
    for q in dev:
        q.ranked = ranked.get(q.qid, [])
    record["dev_negatives"] = dev_record.get("negatives")
    return dev, qrels


def read_teacher_scores(path: Path) -> dict[str, dict[str, float]]:
    """``qid docid score`` per line (tabs or spaces; a header line is skipped)."""
    if not path.is_file():
        raise DataError("teacher score file not found", path)
    from irbench.data.readers import iter_lines

    out: dict[str, dict[str, float]] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(f"expected 3 columns 'qid docid score', got {len(parts)}", path, lineno)
        try:
            score = float(parts[2])
        except ValueError:
            if lineno == 1:
                continue  # header
            raise DataError(f"score {parts[2]!r} is not a number", path, lineno) from None
        hits = out.setdefault(parts[0], {})
        if parts[1] in hits:
            first = next(n for n, ln in iter_lines(path) if ln.split()[:2] == parts[:2])
            raise DataError(
                f"a second score for query {parts[0]}, doc {parts[1]} (first at line {first}); "
                "keep one",
                path,
                lineno,
            )
        hits[parts[1]] = score
    if not out:
        raise DataError("no teacher scores in the file", path)
    return out


#: first-column names that mark a header line of a triples file
TRIPLES_HEADER = frozenset({"query", "qid", "query_id", "query-id", "queries"})


def _from_triples(
    path: Path, dataset: Any, settings: TrainSettings, record: dict[str, Any]
) -> TrainingData:
    """Examples from ``query <tab> positive <tab> negative`` lines: ids of the dataset's
    queries and docs when any of the first 100 rows starts with a query id of the split
    (then every row must be ids, each unknown id an error naming its line), texts otherwise.
    A first line whose first field is a column name (``query``, ``qid``...) is a header.
    Rows of one query share its positives as qrels, and equal texts are one doc, so that
    another row's copy of a positive is never an in-batch negative."""
    import hashlib

    if not path.is_file():
        raise DataError("triples file not found", path)
    if settings.dev_queries or settings.dev_split:
        raise ConfigError(
            "train.data.triples has no dev queries: unset train.data.dev_queries and "
            "train.data.dev_split (and train.eval.every), or train from the dataset's qrels"
        )
    if settings.negatives > 1:
        raise ConfigError("triples give one negative per query; set train.negatives.per_query=1")
    from irbench.data.readers import iter_lines

    rows: list[tuple[int, list[str]]] = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(
                f"expected 3 tab-separated columns 'query positive negative', got {len(parts)}",
                path,
                lineno,
            )
        if not rows and parts[0].strip().lower() in TRIPLES_HEADER:
            continue  # a header line
        rows.append((lineno, parts))
        if settings.max_queries and len(rows) >= settings.max_queries:
            break
    if not rows:
        raise DataError("no triples in the file", path)
    queries_by_id = {q.query_id: q.text for q in dataset.queries_iter()}
    as_ids = any(parts[0] in queries_by_id for _, parts in rows[:100])
    docs: dict[str, str] = {}
    out = []
    positives: dict[str, set[str]] = {}  # per query (id, or text)
    if as_ids:
        ids = {r[1] for _, r in rows} | {r[2] for _, r in rows}
        docs = {d.doc_id: d.full_text() for d in dataset.docs_iter() if d.doc_id in ids}
        for lineno, (qid, p, n) in rows:
            for value, column, known in ((qid, "query", queries_by_id), (p, "positive", docs),
                                         (n, "negative", docs)):  # fmt: skip
                if value not in known:
                    where = f"a query of split '{settings.split}'" if column == "query" else "a doc"
                    raise DataError(
                        f"{column} id {value!r} is not {where} of dataset '{dataset.name}' "
                        "(the file's other rows are ids)",
                        path,
                        lineno,
                    )
            out.append(TrainQuery(f"{qid}#{lineno}", queries_by_id[qid], [p], [p, n], [n]))
            positives.setdefault(qid, set()).add(p)
        qrels = {q.qid: dict.fromkeys(positives[q.qid.rsplit("#", 1)[0]], 1) for q in out}
    else:

        def text_id(prefix: str, text: str) -> str:
            return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]

        for lineno, (qtext, ptext, ntext) in rows:
            p, n = text_id("p", ptext), text_id("p", ntext)  # one id per distinct text
            docs[p], docs[n] = ptext, ntext
            out.append(TrainQuery(f"t{lineno}", qtext, [p], [p, n], [n]))
            positives.setdefault(qtext, set()).add(p)
        qrels = {q.qid: dict.fromkeys(positives[q.text], 1) for q in out}
    record.update(triples=str(path), triples_format="ids" if as_ids else "text")
    return TrainingData(out, [], docs, qrels, settings, record)


# -- negatives --------------------------------------------------------------------------------------
def miner_config(
    cfg: Any, retriever: str, split: str, depth: int, backbone: str | None = None, key: str = ""
) -> Any:
    """The config that retrieves for the training split: this dataset, the miner's encoder
    preset (or this encoder for ``self``) and its index, ``k = depth``."""
    from omegaconf import OmegaConf, open_dict

    from irbench.config import config_dir, group_options

    sub = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(sub):
        sub.pop("train", None)
        sub.fusion = None
        sub.dataset.split = split
        sub.k = int(depth)
        sub.tag = "negatives"
        sub.encode.shard = None
        sub.encode.num_shards = 1
        if retriever != "self":
            root = config_dir()
            options = group_options("encoder", root)
            if retriever not in options:
                raise ConfigError(
                    f"{key or 'train.negatives.retriever'}: unknown encoder preset {retriever!r}; "
                    f"use self or one of {', '.join(options)}"
                )
            node = OmegaConf.load(root / "encoder" / f"{retriever}.yaml")
            node.pop("defaults", None)
            if backbone:
                node.backbone = str(backbone)
            sub.encoder = node
            target = str(node.get("_target_", ""))
            index = "faiss" if target.endswith("DenseEncoder") else "numba"
            sub.index = OmegaConf.load(root / "index" / f"{index}.yaml")
    OmegaConf.resolve(sub)
    return sub


def mine(
    cfg: Any,
    dataset: Any,
    queries: list[TrainQuery],
    settings: TrainSettings,
    split: str,
    record: dict,
) -> dict[str, list[str]]:
    """Ranked hits (depth ``negatives.depth`` or ``eval.depth``) of the training queries by the
    miner, through irbench's index/search; cached by content key."""
    from irbench.pipeline import build_index, search
    from irbench.runs.cache import content_key, get_or_build
    from irbench.types import Query

    depth = max(settings.depth + settings.skip, settings.eval_depth)
    sub = miner_config(cfg, settings.miner, split, depth, settings.miner_backbone)
    index_record: dict[str, Any] = {}
    handle = build_index(sub, index_record)
    fp = dataset.fingerprint()
    qids = [q.qid for q in queries]
    key = content_key(
        NEGATIVES_FORMAT, handle.path.name, fp.get("queries"), fp.get("qrels"), depth, qids
    )
    entry = Path(cfg.cache_dir) / "negatives" / f"{dataset.name}.{split}.{settings.miner}.{key}"

    def build(tmp: Path) -> dict[str, Any]:
        info: dict[str, Any] = {}
        hits = search(sub, handle, [Query(q.qid, q.text) for q in queries], info)
        with open(tmp / "hits.tsv", "w", encoding="utf-8", newline="\n") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            for qid, ranked in hits:
                for rank, (docid, score) in enumerate(ranked, start=1):
                    w.writerow([qid, docid, rank, f"{score:.6f}"])
        return {"queries": len(hits), "depth": depth, "index": str(handle.path), **info}

    reused, info = get_or_build(entry, build)
    out: dict[str, list[str]] = {}
    with open(entry / "hits.tsv", encoding="utf-8") as f:
        for qid, docid, _rank, _score in csv.reader(f, delimiter="\t"):
            out.setdefault(qid, []).append(docid)
    record["negatives"] = {"cache": str(entry), "reused": reused, "retriever": settings.miner}
    return out


# -- teacher scores from an encoder ---------------------------------------------------------------
TEACHER_FORMAT = 1


def teacher_scores(
    cfg: Any, dataset: Any, queries: list[TrainQuery], settings: TrainSettings, record: dict
) -> dict[str, dict[str, float]]:
    """``{qid: {docid: score}}`` for each query's positives and candidate negatives, scored by
    the ``train.data.teacher`` encoder (dot product of its query and doc vectors); cached in
    ``cache_dir/teacher/`` by content key."""
    import scipy.sparse as sp

    from irbench.pipeline import make_encoder
    from irbench.runs.cache import content_key, get_or_build
    from irbench.types import Query

    sub = miner_config(
        cfg, settings.teacher, settings.split, 1, settings.teacher_backbone, "train.data.teacher"
    )
    encoder = make_encoder(sub)
    if not getattr(encoder, "shardable", False) or getattr(encoder, "needs_fit", False):
        raise ConfigError(
            f"train.data.teacher={settings.teacher} needs corpus statistics to score a doc; use "
            "a neural encoder preset (splade, dense...) or train.data.teacher_scores=FILE"
        )
    pairs = {q.qid: sorted(set(q.positives) | set(q.negatives[: settings.depth])) for q in queries}
    fp = dataset.fingerprint()
    key = content_key(
        TEACHER_FORMAT, encoder.config_key(), fp.get("docs"), fp.get("queries"), pairs
    )
    entry = Path(cfg.cache_dir) / "teacher" / f"{dataset.name}.{settings.teacher}.{key}"

    def build(tmp: Path) -> dict[str, Any]:
        needed = sorted({d for ds in pairs.values() for d in ds})
        row = {d: i for i, d in enumerate(needed)}
        docs_by_id = {d.doc_id: d for d in dataset.docs_iter() if d.doc_id in row}
        missing = sorted(set(needed) - set(docs_by_id))
        if missing:
            raise DataError(
                f"{len(missing)} qrels doc ids are not in the corpus (e.g. '{missing[0]}')"
            )
        batches = list(encoder.encode_corpus(docs_by_id[d] for d in needed))
        dvecs = sp.vstack(batches, format="csr") if sp.issparse(batches[0]) else np.vstack(batches)
        qvecs = encoder.encode_queries([Query(q.qid, q.text) for q in queries])
        with open(tmp / "scores.tsv", "w", encoding="utf-8", newline="\n") as f:
            for i, q in enumerate(queries):
                ids = pairs[q.qid]
                d = dvecs[[row[x] for x in ids]]
                qv = qvecs[i]
                scores = (d @ qv.T).toarray().ravel() if sp.issparse(d) else d @ np.asarray(qv)
                for docid, score in zip(ids, scores, strict=True):
                    f.write(f"{q.qid}\t{docid}\t{float(score):.6f}\n")
        return {"queries": len(queries), "pairs": sum(len(v) for v in pairs.values())}

    reused, _ = get_or_build(entry, build)
    record["teacher"] = {"cache": str(entry), "reused": reused, "encoder": settings.teacher}
    return read_teacher_scores(entry / "scores.tsv")
