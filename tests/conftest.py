"""Shared fixtures: float64 oracles and small random networks."""

from __future__ import annotations

import signal

import pytest
import torch

from ssm_lib import EnergyMLP, Gaussian, ScoreMLP


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def gaussian3() -> Gaussian:
    """A correlated 3-D Gaussian in float64."""
    a = torch.tensor([[1.0, 0.3, -0.2], [0.0, 0.8, 0.4], [0.0, 0.0, 1.3]], dtype=torch.float64)
    cov = a.T @ a + 0.1 * torch.eye(3, dtype=torch.float64)
    return Gaussian(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), cov)


@pytest.fixture
def score_mlp() -> ScoreMLP:
    torch.manual_seed(0)
    return ScoreMLP(4, hidden=16, depth=2).double()


@pytest.fixture
def energy_mlp() -> EnergyMLP:
    torch.manual_seed(1)
    return EnergyMLP(4, hidden=16, depth=2).double()


def standard_error(values: torch.Tensor) -> float:
    """Standard error of the mean of a 1-D sample."""
    values = values.detach()
    return float(values.std() / values.numel() ** 0.5)


@pytest.fixture
def one_thread():
    """Small batched linear algebra and tiny networks: one thread is faster on a shared CPU.
    Use in a module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: restore its default
    disposition. A shell that starts pytest in the background (``make test &``, ``nohup``) hands
    it SIGINT ignored, every child inherits that, and Python then installs no KeyboardInterrupt
    handler, so the child would not see the Ctrl-C the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
