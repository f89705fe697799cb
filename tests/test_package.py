"""The package itself: importing it is light."""

from __future__ import annotations

import subprocess
import sys

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
    code = "import ssm_lib.plotting, sys; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
