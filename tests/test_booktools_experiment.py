"""The notebook harness (booktools.experiment): parameters, outputs, checked claims, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from booktools.experiment import ClaimFailed, setup


def test_setup_validates_profile_device_and_seed(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        setup("t", profile="medium", output_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            setup("t", device="cuda", output_dir=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        setup("t", seed="3", output_dir=tmp_path)


def test_figure_record_check_pick_and_generator(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = setup("demo", output_dir=tmp_path, seed=3)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = exp.save_figure(fig, "line")
    plt.close(fig)
    assert path == tmp_path / "figures" / "demo" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exp.record(value=torch.tensor(1.5), items=[1, 2])
    exp.check(True, "holds")
    with pytest.raises(ClaimFailed, match="fails"):
        exp.check(False, "fails")
    data = json.loads((tmp_path / "results" / "demo.json").read_text())
    assert data["value"] == 1.5 and data["items"] == [1, 2]
    assert data["checks"] == {"holds": True, "fails": False}
    assert data["meta"]["seed"] == 3 and data["meta"]["profile"] == "quick"
    assert exp.pick("q", "f") == "q"
    assert setup("demo", profile="full", output_dir=tmp_path).pick("q", "f") == "f"
    a = torch.rand(2, generator=exp.generator())
    assert torch.equal(a, torch.rand(2, generator=exp.generator()))
    assert not torch.equal(a, torch.rand(2, generator=exp.generator(1)))


@pytest.mark.parametrize("value, expected", [
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (-float("inf"), "-inf"),
    (np.float32("inf"), "inf"),                       # numpy scalar
    (np.array([1.0, np.nan]), [1.0, "nan"]),          # numpy array
    (torch.tensor([0.5, -float("inf")]), [0.5, "-inf"]),
    (torch.tensor(float("nan")), "nan"),              # 0-d tensor
    ({"a": (2.0, float("inf"))}, {"a": [2.0, "inf"]}),  # nested
])
def test_non_finite_numbers_are_written_as_strict_json(tmp_path, value, expected):
    exp = setup("nf", output_dir=tmp_path)
    exp.record(x=value, ok=0.25)
    text = (tmp_path / "results" / "nf.json").read_text()

    def reject(token):
        raise AssertionError(f"non-standard JSON token {token}")

    data = json.loads(text, parse_constant=reject)    # NaN / Infinity are not JSON
    assert data["x"] == expected and data["ok"] == 0.25
