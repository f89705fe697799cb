"""Tooling of the book (not part of ``ssm_lib``): the experiment-notebook harness
(:mod:`booktools.experiment`), the benchmark harness, and the helpers of the chapters'
figures: 2-D grids (:mod:`booktools.grids`), plotting (:mod:`booktools.plotting`, matplotlib)
and the running example density (:mod:`booktools.examples`). The paper's data loaders and
networks are in the sibling package ``paper_recipes``."""
