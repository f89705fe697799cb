"""The implicit-VAE record's cpu profile (issue 24): the paper's data, architecture, optimiser and
evaluation method, reduced only in lengths, each reduction with its reason."""

from __future__ import annotations

from booktools.records import load_record

NAME = "implicit_vae"


def test_cpu_profile_is_described_and_keeps_the_papers_model_and_evaluation():
    record = load_record(NAME)
    assert "cpu" in record.profiles
    cpu = {k: s.values["cpu"] for k, s in record.settings.items()}
    paper = {k: s.paper for k, s in record.settings.items()}
    # the paper's architecture, optimiser, latent sizes, batch, draws and AIS chains/leapfrog steps
    for key in ("hidden", "z_dims", "optimizer", "lr", "batch_size", "kernel_particles", "ssm_particles",
                "nll_method", "ais_chains", "ais_leapfrog", "ais_step_size", "wae_lambda", "binarisation"):
        assert cpu[key] == paper[key], key
    assert cpu["data"].startswith("MNIST 28 x 28")
    # one training length for every estimator, shorter than the paper's, with a measured reason
    assert 0 < cpu["steps"] < paper["steps"]
    assert "measured" in record.settings["steps"].reasons["cpu"]
    assert 0 < cpu["ais_temperatures"] < paper["ais_temperatures"]
    assert cpu["ais_test_images"] <= cpu["n_test"]
    assert cpu["n_seeds"] >= 3
