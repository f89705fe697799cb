"""Oracle tests for DKEF that kill mutants the older tests let through (issue 19).

Each test names, in its docstring, the one-line bug it exists to catch. Everything is float64
and small; the oracles are independent computations (a pinned default, a direct solve, an
analytic importance-sampling variance, the spread over seeds, a grid over lambda).
"""

from __future__ import annotations

import math

import torch

from ssm_lib.dkef import DKEF, dkef_loss, log_normalizer, train_dkef, training_step

F64 = torch.float64


def _model(dim=2, m=5, seed=0, n_kernels=2, hidden=6, **kwargs):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, dim, generator=gen, dtype=F64)
    return DKEF(z, n_kernels=n_kernels, hidden=hidden, generator=gen, **kwargs)


def _x(n, dim=2, seed=1, scale=1.0):
    return scale * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------- 1. the ridge


def test_default_ridge_is_the_papers_one_hundredth():
    """Mutant: ``DKEF.ridge()`` returning ``10 ** (-log10_lambda)`` (every other test reads
    lambda back from the model, so a wrong map from log10_lambda to lambda goes unseen).
    Oracle: the paper's default lambda = 1e-2, pinned as a number, and the default solve
    equals -(G + 0.01 I)^{-1} b computed here."""
    model = _model()
    assert math.isclose(float(model.ridge().detach()), 1e-2, rel_tol=1e-12)
    assert math.isclose(float(_model(log10_lambda=-3.0).ridge().detach()), 1e-3, rel_tol=1e-12)
    G, b, _ = model.alpha_system(_x(9), "exact", create_graph=False)
    expected = -torch.linalg.solve(G + 0.01 * torch.eye(G.shape[0], dtype=F64), b)
    torch.testing.assert_close(model.solve_alpha(G, b), expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- 2. disjoint halves


def test_training_step_takes_the_loss_on_the_other_half():
    """Mutant: ``training_step`` taking the loss on the half that fitted alpha
    (``batch[:half]`` for ``batch[half:2 * half]``). Oracle: alpha solved here from rows
    0..half-1, the exact-SM loss evaluated here on rows half..2*half-1 (deterministic, so the
    returned value must match to rounding); the in-sample loss differs by far more."""
    model = _model()
    batch = _x(12, seed=4)
    G, b, _ = model.alpha_system(batch[:6], "exact", create_graph=False)
    alpha = model.solve_alpha(G, b).detach()
    held_out = dkef_loss(model, batch[6:], "exact", alpha).item()
    in_sample = dkef_loss(model, batch[:6], "exact", alpha).item()
    assert abs(held_out - in_sample) > 1e-3  # the oracle separates the two
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    loss = training_step(model, batch, "exact", opt)
    assert math.isclose(loss, held_out, rel_tol=1e-9, abs_tol=1e-12), (loss, held_out, in_sample)


# ---------------------------------------------------------------------------- 3./4. log Z


def _analytic_is_se(base_std, proposal_std, dim, n):
    """Delta-method standard error of log Z-hat when p~ = q0 = N(0, a^2 I) exactly (alpha = 0,
    log Z = 0) and the proposal is q = N(0, s^2 I): the weights w = q0/q have mean 1 and
    E_q[w^2] = (s^2 / (a sqrt(2 s^2 - a^2)))^d, so se = sqrt((E w^2 - 1)/n)."""
    a, s = base_std, proposal_std
    second_moment = (s * s / (a * math.sqrt(2 * s * s - a * a))) ** dim
    return math.sqrt((second_moment - 1) / n)


def test_log_normalizer_uses_the_proposal_width():
    """Mutant: ``log_normalizer`` ignoring ``proposal_std`` (always sampling q0). Oracle: with
    alpha = 0 the model is q0 itself, log Z = 0, and for a proposal N(0, s^2 I) the weights'
    variance is known in closed form; with s = 1.6 sigma_0 the reported standard error must be
    that analytic one (ignoring s gives exactly 0: every weight is 1) and the estimate within
    4 of them of 0; a second width (1.3 sigma_0) gives a second analytic value."""
    model = _model(dim=2)
    assert float(model.alpha.abs().max()) == 0.0
    n = 40_000
    for factor in (1.6, 1.3):
        s = factor * model.base_std
        log_z, se = log_normalizer(model, n, generator=torch.Generator().manual_seed(3), proposal_std=s)
        se_true = _analytic_is_se(model.base_std, s, model.dim, n)
        assert 0.8 * se_true < se < 1.25 * se_true, (factor, se, se_true)
        assert abs(log_z) < 4 * se_true, (factor, log_z, se_true)


def test_log_normalizer_standard_error_matches_spread_over_seeds():
    """Mutant: the log Z standard error not divided by the mean weight (the weights are
    rescaled by their maximum before the variance is taken, so without the division the SE
    is off by max(w)/mean(w)). Oracle: the spread of log Z-hat over 60 seeds, an independent
    measurement of the same standard deviation; the mean reported SE must match it within
    a factor 1.35 (the spread's own relative error is ~9%), and the seeds' mean must agree with
    a 2-D grid integral of the density."""
    model = _model(dim=2, m=4, seed=3)
    model.alpha.copy_(torch.tensor([1.5, -0.7, 0.9, 0.4], dtype=F64))
    t = torch.linspace(-14, 14, 281, dtype=F64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    with torch.no_grad():
        lp = model.unnormalized_log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))
    log_z_grid = (torch.logsumexp(lp, 0) + 2 * torch.log(t[1] - t[0])).item()
    n, seeds = 400, 60
    runs = [log_normalizer(model, n, generator=torch.Generator().manual_seed(100 + i)) for i in range(seeds)]
    est = torch.tensor([r[0] for r in runs], dtype=F64)
    ses = torch.tensor([r[1] for r in runs], dtype=F64)
    spread = est.std().item()
    assert 1 / 1.35 < ses.mean().item() / spread < 1.35, (ses.mean().item(), spread)
    assert abs(est.mean().item() - log_z_grid) < 4 * spread / math.sqrt(seeds) + 0.01


# ---------------------------------------------------------------------------- 5./6. train_dkef


def test_train_dkef_restores_the_best_state():
    """Mutant: ``train_dkef`` never restoring the best state (``model.load_state_dict(best_state)``
    dropped). Oracle: a run with a learning rate so large that the validation loss gets worse
    after its best check; with ``lambda_steps=0`` and the exact (deterministic) objective the
    returned model's validation loss must be the best recorded one, not the last."""
    gen = torch.Generator().manual_seed(0)
    data = _x(90, seed=7) * torch.tensor([1.0, 0.3], dtype=F64)
    train, val = data[:60], data[60:]
    model = DKEF(train[:6].clone(), n_kernels=1, hidden=6, generator=gen)
    hist = train_dkef(model, train, val, "exact", steps=12, batch_size=20, lr=0.3, val_every=2,
                      patience=1000, lambda_steps=0, generator=gen)
    vals = [v for _, v in hist.val]
    best = min(vals)
    assert vals[-1] > best + 1e-3, vals  # the run did get worse after its best check
    final = dkef_loss(model, val, "exact").item()
    assert math.isclose(final, best, rel_tol=1e-8, abs_tol=1e-10), (final, best, vals)


def test_lambda_stage_is_tuned_on_validation_rows():
    """Mutant: the lambda stage of ``train_dkef`` scoring lambda on training rows
    (``train[rows]`` for ``val[rows]``). Oracle: training rows from N(0, 0.3^2 I) (alpha fits
    them, and their in-sample loss prefers a small lambda) and validation rows from the base
    density N(0, 2^2 I) itself (for which alpha = 0 is right, so a large lambda is better). The
    validation objective as a function of log10 lambda is computed here on a grid from the
    same (G, b); after the lambda stage, log10 lambda must have moved up, towards the
    grid's minimiser, and the validation loss must have gone down."""
    gen = torch.Generator().manual_seed(0)
    train = _x(40, seed=11, scale=0.3)
    val = _x(30, seed=12, scale=2.0)
    model = DKEF(train[:8].clone(), n_kernels=1, hidden=6, generator=gen)
    start = model.log10_lambda.item()
    G, b = model.accumulate_system(train, "exact")

    def val_loss(log10_lam):
        alpha = model.solve_alpha(G, b, torch.tensor(10.0**log10_lam, dtype=F64))
        return dkef_loss(model, val, "exact", alpha).item()

    def train_loss(log10_lam):
        alpha = model.solve_alpha(G, b, torch.tensor(10.0**log10_lam, dtype=F64))
        return dkef_loss(model, train, "exact", alpha).item()

    # the two criteria pull lambda in opposite directions here
    assert val_loss(start + 0.5) < val_loss(start) < val_loss(start - 0.5)
    assert train_loss(start - 0.5) < train_loss(start) < train_loss(start + 0.5)
    train_dkef(model, train, val, "exact", steps=1, batch_size=20, lr=1e-12, n_alpha=1000,
               lambda_steps=15, lambda_lr=0.15, generator=gen)
    end = model.log10_lambda.item()
    assert end > start + 0.5, (start, end)
    assert val_loss(end) < val_loss(start)


# ---------------------------------------------------------------------------- 7. chunks


def test_accumulate_system_weights_uneven_chunks_by_their_rows():
    """Mutant: ``accumulate_system`` weighting every chunk alike (``g_ * chunk`` for
    ``g_ * xb.shape[0]``), right only when all chunks are full. Oracle: 7 rows in chunks of 3
    (3 + 3 + 1) against the unchunked float64 system of all 7 rows, and the fitted alpha
    against the direct solve."""
    model = _model(dim=2, m=5)
    x = _x(7, seed=5)
    G_full, b_full, _ = model.alpha_system(x, "exact", create_graph=False)
    G, b = model.accumulate_system(x, "exact", chunk=3)
    torch.testing.assert_close(G, G_full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(b, b_full, rtol=1e-10, atol=1e-12)
    alpha = model.fit_alpha(x, "exact", chunk=3).clone()
    torch.testing.assert_close(alpha, model.solve_alpha(G_full, b_full), rtol=1e-9, atol=1e-10)
