"""Oracle test for NICE's sampling temperature (issue 19)."""

from __future__ import annotations

import torch

from ssm_lib import NICE

F64 = torch.float64


def _nice() -> NICE:
    torch.manual_seed(0)
    model = NICE(4, hidden=8, depth=2, n_couplings=4).double()
    with torch.no_grad():  # a non-trivial flow: random coupling weights and scales
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=F64))
    return model


def test_sample_temperature_scales_the_latent():
    """Mutant: ``NICE.sample`` ignoring ``temperature`` (``self.inverse(z)`` for
    ``self.inverse(temperature * z)``). Oracle: samples are f^{-1}(tau z) with z ~ N(0, I), so
    mapping them back through the flow must give tau times the latent drawn from the same
    generator state, and the latent spread must scale with tau (0.3 and 1.7)."""
    model = _nice()
    for tau in (0.3, 1.7):
        x = model.sample(2000, generator=torch.Generator().manual_seed(5), temperature=tau)
        z = torch.randn(2000, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
        with torch.no_grad():
            latent, _ = model(x)
        torch.testing.assert_close(latent, tau * z, rtol=1e-8, atol=1e-8)
        assert abs(latent.std().item() / tau - 1) < 0.05
