"""Configs: the shared rule predicates (``rules``), the up-front validator (``validation``) and
one-line messages for flag errors (``flag_errors``). Pure Python apart from what it validates."""
