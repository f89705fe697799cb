"""The package itself: importing it is light."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "ssm_lib"
# modules of another branch of work (the training core, the registry, dkef) that have no
# ``__all__`` yet: listed here until they declare one

HEAVY = ("matplotlib", "tqdm", "IPython", "myst_nb", "papermill", "pandas")


def test_import_ssm_lib_loads_no_plotting_progress_or_notebook_module():
    # ``import torch`` itself loads tqdm (through torch.hub), so compare with the modules
    # present once torch is imported.
    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import ssm_lib\n"
        f"print(sorted({{m.split('.')[0] for m in set(sys.modules) - before}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plotting_is_imported_on_request():
    code = "import booktools.plotting, sys; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# What the library may not import: the experiments' side, and packages it does not declare.
NOT_IN_LIBRARY = ("booktools", "paper_recipes", "matplotlib", "sklearn", "torchvision", "pandas")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_imports_nothing_from_the_experiments_side_or_undeclared_packages():
    bad = {}
    for path in sorted(LIBRARY.glob("*.py")):
        found = _imported_roots(path) & set(NOT_IN_LIBRARY)
        if found:
            bad[path.name] = sorted(found)
    assert bad == {}, f"ssm_lib modules importing from outside the library: {bad}"


def test_library_derives_no_path_from_its_own_location():
    # data paths are passed in; a path built from __file__ breaks after `pip install .`
    users = [p.name for p in sorted(LIBRARY.rglob("*.py")) if "__file__" in p.read_text()]
    assert users == []


def test_every_public_module_declares_its_surface():
    # every module whose name has no leading underscore, and every package's __init__
    missing = [str(p.relative_to(LIBRARY)) for p in sorted(LIBRARY.rglob("*.py"))
               if (not p.name.startswith("_") or p.name == "__init__.py")
               and "__all__" not in p.read_text()]
    assert missing == []


def test_top_level_exports_names_not_modules():
    import ssm_lib

    modules = [name for name in ssm_lib.__all__ if inspect.ismodule(getattr(ssm_lib, name))]
    assert modules == []
    for name in ("curvature_propagation_score_matching", "approx_backprop_score_matching", "DKEF",
                 "NICE", "SteinScoreEstimator", "SpectralScoreEstimator", "NetworkScoreEstimator"):
        assert name in ssm_lib.__all__, name


def _doc_comment_above(path: Path, assignment: str) -> str:
    """The ``#:`` comment block right above ``assignment`` in ``path`` (what Sphinx shows)."""
    lines = path.read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith(assignment))
    start = end
    while start > 0 and lines[start - 1].startswith("#:"):
        start -= 1
    return " ".join(line[2:].strip() for line in lines[start:end])


def test_the_api_page_lists_every_objective_and_model_class_in_words():
    """OBJECTIVES and MODEL_CLASSES hide their values on the API page (a one-line dump of
    every ObjectiveSpec); their doc comments name each entry instead, and must keep up."""
    import ssm_lib
    from ssm_lib.losses import OBJECTIVES
    from ssm_lib.persistence import MODEL_CLASSES

    root = Path(ssm_lib.__file__).parent
    objectives = _doc_comment_above(root / "losses.py", "OBJECTIVES:")
    assert ":meta hide-value:" in objectives
    for name, spec in OBJECTIVES.items():
        assert f'``"{name}"`` ({spec.label}' in objectives, name
    classes = _doc_comment_above(root / "persistence.py", "MODEL_CLASSES:")
    assert ":meta hide-value:" in classes
    for name in MODEL_CLASSES:
        assert f"``{name}``" in classes, name
