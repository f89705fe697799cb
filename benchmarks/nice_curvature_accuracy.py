"""CP's variance and Approx BP's bias on small random NICE flows, against exact float64
Hessian diagonals of the flow's energy taken by autograd; prints one line per flow.

    python benchmarks/nice_curvature_accuracy.py

The numbers quoted in book/nice_experiment.md come from this script (seeded; a few seconds).
"""

from __future__ import annotations

import torch

from ssm_lib.curvature import hessian_diagonal
from ssm_lib.flows import NICE


def random_flow(dim: int, n_couplings: int, hidden: int, seed: int) -> NICE:
    torch.manual_seed(seed)
    model = NICE(dim, hidden=hidden, depth=2, n_couplings=n_couplings).double()
    with torch.no_grad():
        model.scaling.log_scale.normal_(0.0, 0.3)
        for c in model.couplings:
            for p in c.shift_net.parameters():
                p.mul_(1.5)
    return model


def exact_trace(model: NICE, x: torch.Tensor) -> torch.Tensor:
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.energy(xs).sum(), xs, create_graph=True)
    return sum(torch.autograd.grad(g[:, i].sum(), xs, retain_graph=True)[0][:, i]
               for i in range(x.shape[1])).detach()


def main() -> None:
    draws, points = 500, 32
    print(f"{'couplings':>9} {'d':>3} {'mean |trace|':>12} {'CP sd/|trace|':>13} "
          f"{'Approx BP |bias|/|trace|':>24}")
    for k in (1, 2, 4):
        for dim, hidden in ((5, 6), (64, 64)):
            model = random_flow(dim, k, hidden, seed=k)
            x = torch.randn(points, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            exact = exact_trace(model, x)
            _, _, h = hessian_diagonal(model, x.repeat(draws, 1), method="cp",
                                       generator=torch.Generator().manual_seed(0))
            cp = h[:, 0].sum(-1).reshape(draws, points).detach()
            _, _, ha = hessian_diagonal(model, x, method="approx_bp")
            bias = (ha[:, 0].sum(-1) - exact).abs().mean() / exact.abs().mean()
            scale = exact.abs().mean()
            print(f"{k:>9} {dim:>3} {scale:>12.3g} {cp.std(0).mean() / scale:>13.3f} {bias:>24.4f}")


if __name__ == "__main__":
    main()
