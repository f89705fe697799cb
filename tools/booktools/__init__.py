"""Tooling of the book (not part of ``ssm_lib``): the experiment-notebook harness
(:mod:`booktools.experiment`) and the benchmark harness."""
