"""Evaluation: ir_measures names, per-query and aggregate values."""

from irbench.eval.measures import Evaluation, evaluate, parse_measures

__all__ = ["Evaluation", "evaluate", "parse_measures"]
