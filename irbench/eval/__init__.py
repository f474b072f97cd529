"""Evaluation: ir_measures names, per-query and aggregate values."""

from irbench.eval.measures import Evaluation, check_evaluable, evaluate, parse_measures

__all__ = ["Evaluation", "check_evaluable", "evaluate", "parse_measures"]
