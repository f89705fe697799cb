"""Score and energy models."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import (
    EnergyMLP,
    Gaussian,
    NoiseConditionalScoreMLP,
    ScoreMLP,
    exact_score_matching,
    score_from_energy,
)


def test_score_from_quadratic_energy_is_gaussian_score(gaussian3, gen):
    p = gaussian3

    def energy(x):
        diff = x - p.mean
        return 0.5 * ((diff @ p.precision) * diff).sum(1)

    x = p.sample(16, generator=gen)
    score = score_from_energy(energy)
    torch.testing.assert_close(score(x), p.score(x))
    # second derivatives flow: exact SM of the energy's score equals the Gaussian's pointwise value
    torch.testing.assert_close(exact_score_matching(score, x, reduction="none"),
                               exact_score_matching(p.score, x, reduction="none"))


def test_energy_mlp_score_is_minus_gradient(energy_mlp, gen):
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_mlp(xg).sum(), xg)
    torch.testing.assert_close(energy_mlp.score(x), -grad)
    torch.testing.assert_close(energy_mlp.unnormalized_log_prob(x), -energy_mlp(x))
    assert not x.requires_grad


def test_energy_score_under_no_grad_is_detached(energy_mlp):
    with torch.no_grad():
        s = energy_mlp.score(torch.zeros(3, 4, dtype=torch.float64))
    assert not s.requires_grad and s.shape == (3, 4)


def test_energy_score_trains_parameters(energy_mlp, gen):
    x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    exact_score_matching(energy_mlp.score, x).backward()
    # every weight matrix gets a gradient (the output bias shifts E by a constant: no effect)
    weights = [p for name, p in energy_mlp.named_parameters() if name.endswith("weight")]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)


@pytest.mark.parametrize("activation", ["silu", "softplus", "tanh", "gelu"])
def test_mlps_are_smooth_with_nonzero_curvature(activation, gen):
    torch.manual_seed(0)
    model = ScoreMLP(3, hidden=8, depth=2, activation=activation).double()
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    # the Jacobian of a piecewise-linear net would be locally constant; ours is not
    j1 = torch.autograd.functional.jacobian(lambda y: model(y.unsqueeze(0)).squeeze(0), x[0])
    j2 = torch.autograd.functional.jacobian(lambda y: model(y.unsqueeze(0)).squeeze(0), x[0] + 1e-3)
    assert (j1 - j2).abs().max() > 1e-8


def test_noise_conditional_model_shapes_and_scaling():
    torch.manual_seed(0)
    model = NoiseConditionalScoreMLP(2, hidden=8, depth=1).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    out = model(x, torch.full((5,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(out, model(x, 0.5))
    with pytest.raises(ValueError, match="sigma"):
        model(x, -1.0)


@pytest.mark.parametrize(("factory", "name"), [
    (lambda: ScoreMLP(0), "dim"),
    (lambda: ScoreMLP(2, hidden=0), "hidden"),
    (lambda: EnergyMLP(2, depth=0), "depth"),
    (lambda: ScoreMLP(2, activation="relu"), "activation"),
])
def test_bad_model_arguments(factory, name):
    with pytest.raises(ValueError, match=name):
        factory()


def test_model_input_shape_error():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        ScoreMLP(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="energy_fn"):
        score_from_energy(lambda x: x)(torch.zeros(2, 3))
    # the standard normal's score is -x
    torch.testing.assert_close(Gaussian([0.0], [[1.0]]).score(torch.tensor([[0.0], [2.0]])),
                               torch.tensor([[0.0], [-2.0]]))


def test_noise_conditional_output_is_divided_by_sigma():
    # with the output layer's weights zeroed and its bias b, the network's output is b, so the
    # score must be exactly b / sigma
    torch.manual_seed(0)
    model = NoiseConditionalScoreMLP(3, hidden=8, depth=2).double()
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        model.net[-1].weight.zero_()
        model.net[-1].bias.copy_(b)
    x = torch.randn(4, 3, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(model(x, sigma), b / sigma[:, None], rtol=1e-14, atol=0)


def test_noise_conditional_network_sees_log_sigma():
    # sigma * s(x, sigma) is the raw network output; it must change with sigma (through the
    # log-sigma input), by the amount the first layer's log-sigma column makes it change
    torch.manual_seed(0)
    model = NoiseConditionalScoreMLP(3, hidden=8, depth=1).double()
    x = torch.randn(1, 3, dtype=torch.float64).expand(5, 3)
    sigma = torch.logspace(-2, 1, 5, dtype=torch.float64)
    raw = model(x, sigma) * sigma[:, None]
    assert (raw - raw[0]).abs().max() > 1e-3
    # independent evaluation of the same MLP on (x, log sigma), layer by layer
    lin1, act, lin2 = model.net
    h = torch.cat([x, sigma.log()[:, None]], dim=1)
    expected = (act(h @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias) / sigma[:, None]
    torch.testing.assert_close(model(x, sigma), expected, rtol=1e-12, atol=1e-14)


def test_energy_confinement_adds_a_quadratic_term():
    torch.manual_seed(0)
    free = EnergyMLP(3, hidden=8, depth=2).double()
    confined = EnergyMLP(3, hidden=8, depth=2, confinement=0.7).double()
    confined.net.load_state_dict(free.net.state_dict())
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(confined(x), free(x) + 0.35 * (x**2).sum(-1))
    torch.testing.assert_close(confined.score(x), free.score(x) - 0.7 * x)
    # far out the confined energy grows like c |x|^2 / 2, so exp(-E) is integrable
    far = torch.tensor([[0.0, 0.0, 50.0], [-60.0, 10.0, 0.0]], dtype=torch.float64)
    assert (confined(far) > 0.3 * 0.7 * (far**2).sum(-1)).all()
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="confinement"):
            EnergyMLP(2, confinement=bad)
