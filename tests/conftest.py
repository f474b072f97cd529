"""Shared fixtures: a small generated BEIR collection, the real ../shared data when present."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
SHARED_MODELS = SHARED / "models"

_rng = random.Random(1234)
# pseudo-words (letters only, so the analyzer keeps them whole) with a long tail, like text
WORDS = sorted(
    {"".join(_rng.choices("bcdfghjklmnpqrstvwxz", k=_rng.randint(4, 8))) for _ in range(1500)}
)


def save_tiny_bert(
    folder: Path,
    vocab: list[str],
    *,
    hidden: int = 16,
    masked_lm: bool = True,
    max_length: int | None = None,
    dropout: float = 0.1,
    init: Callable[[Any], None] | None = None,
) -> Path:
    """Save a random 2-layer BERT (``BertForMaskedLM``, or ``BertModel``) with a WordPiece
    tokenizer over ``vocab`` into ``folder``; weights seeded (0), then ``init(model)`` under
    ``torch.no_grad()`` (e.g. to spread the logits so that many weights are positive)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    try:  # transformers 5 takes the vocabulary itself, 4.x a vocab.txt
        tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    except TypeError:
        tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    if max_length is not None:
        tok.model_max_length = max_length
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )  # fmt: skip
    model = (BertForMaskedLM if masked_lm else BertModel)(config).eval()
    if init is not None:
        with torch.no_grad():
            init(model)
    model.save_pretrained(folder)
    return folder


def make_beir(folder: Path, n_docs: int = 300, n_queries: int = 40, seed: int = 0) -> Path:
    """A BEIR-layout collection whose queries share words with their relevant docs."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(n_docs):
        words = rng.choices(
            WORDS, weights=[1 / (r + 1) for r in range(len(WORDS))], k=rng.randint(5, 40)
        )
        docs.append({"_id": f"d{i}", "title": " ".join(words[:3]), "text": " ".join(words[3:])})
    docs[7]["text"] = ""  # an empty document must be handled
    docs[7]["title"] = ""
    with open(folder / "corpus.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    qrels = []
    with open(folder / "queries.jsonl", "w") as f:
        for q in range(n_queries):
            target = rng.randrange(n_docs)
            words = (docs[target]["title"] + " " + docs[target]["text"]).split()
            text = " ".join(rng.sample(words, k=min(4, len(words)))) if words else "protein"
            f.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            qrels.append((f"q{q}", f"d{target}", 1))
            qrels.append((f"q{q}", f"d{rng.randrange(n_docs)}", rng.choice([1, 2])))
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        unique = {(q, d): r for q, d, r in qrels}  # a qrel pair may be drawn twice
        for (qid, did), rel in unique.items():
            f.write(f"{qid}\t{did}\t{rel}\n")
    return folder


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    return make_beir(tmp_path / "tiny")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run CLI commands inside a fresh folder (runs/ and the cache land there)."""
    wd = tmp_path / "work"
    wd.mkdir()
    monkeypatch.chdir(wd)
    monkeypatch.delenv("IRBENCH_CACHE_DIR", raising=False)
    return wd


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"{path} is absent (the ../shared test data sits beside the checkout in CI)")
    return path


os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _private_fingerprint_memo(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    """Keep the file-fingerprint memo of tests out of ~/.cache."""
    monkeypatch.setenv(
        "IRBENCH_FP_CACHE", str(tmp_path_factory.getbasetemp() / "fingerprints.json")
    )
