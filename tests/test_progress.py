"""Progress bars: silent pass-through off a terminal, a bar (and the training log) on one."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from irbench import progress
from irbench.train import curves


def _terminal(monkeypatch) -> io.StringIO:
    out = io.StringIO()
    con = Console(file=out, force_terminal=True, width=120)
    monkeypatch.setattr(progress, "console", lambda: con)
    return out


def test_track_yields_every_item_off_and_on_a_terminal(monkeypatch):
    assert list(progress.track(range(300), "encoding", total=300)) == list(range(300))
    out = _terminal(monkeypatch)
    assert list(progress.track(range(300), "encoding", total=300)) == list(range(300))
    assert "encoding" in out.getvalue() and "300/300" in out.getvalue()


def test_training_progress_on_a_terminal(monkeypatch):
    out = _terminal(monkeypatch)
    p = curves.Progress(total=10, start=2)
    p.update(5, {"steps_per_s": 3.0, "loss": 0.25})
    p.log({"step": 5, "loss": 0.25, "dev_ndcg@10": 0.5}, "ndcg@10")
    p.close()
    text = Text.from_ansi(out.getvalue()).plain
    assert "training" in text and "step 5/10, loss 0.2500, dev ndcg@10 0.5000" in text
