"""The ESMM simulation runs (fast mode) and what must hold whatever the comparison says.

The example compares ESMM's pCVR with a CVR model trained on clicked rows; this
test does not assert which one is better (that is what the example measures).
It asserts ESMM's invariants: pCTCVR is exactly pCTR * pCVR, pCTR and pCTCVR
are calibrated against the true probabilities of the simulation, and every
pCVR model ranks impressions better than chance.
"""


import numpy as np
import pandas as pd
import pytest

from conftest import load_example


def test_esmm_simulation_fast(tmp_path, capsys):
    out = tmp_path / "esmm.csv"
    result = load_example("esmm_simulation").main(["--fast", "--out", str(out)])
    capsys.readouterr()
    runs = pd.DataFrame(result["runs"])
    models = ["ESMM (shared-bottom)", "CVR on clicks (baseline)", "ESMM (MMoE)"]
    assert set(runs["regime"]) == {"dense", "sparse"}
    assert set(models) <= set(runs["model"])
    summary = pd.read_csv(out)
    assert len(summary) == 2 * (len(models) + 1)  # + the true-pCVR reference row

    # The regimes are what they claim: dense ~30 % clicks, sparse ~3 %.
    assert 0.25 < result["data"]["dense"]["ctr"] < 0.35
    assert 0.02 < result["data"]["sparse"]["ctr"] < 0.04

    esmm = runs[runs["model"].str.startswith("ESMM")]
    assert len(esmm) == 4
    for _, row in esmm.iterrows():
        where = f"{row['model']}, {row['regime']}"
        # predict_joint_proba is the product of predict_proba's columns, in float64.
        assert row["max_joint_gap"] <= 1e-12, where
        # Calibration against the true probabilities over all test impressions,
        # relative to the base rate. Measured in fast mode: |pCTR bias| <= 5.4 %
        # of the mean true pCTR, pCTR ECE <= 12 %; |pCTCVR bias| and pCTCVR ECE
        # <= 25 % of the mean true pCTCVR (the sparse regime trains on 57
        # conversions, whose count alone varies by ~13 %).
        assert abs(row["ctr_bias"]) < 0.15 * row["ctr_true_mean"], where
        assert row["ctr_ece"] < 0.3 * row["ctr_true_mean"], where
        assert abs(row["ctcvr_bias"]) < 0.5 * row["ctcvr_true_mean"], where
        assert row["ctcvr_ece"] < 0.5 * row["ctcvr_true_mean"], where
        # The click model itself learns (measured 0.74-0.75; the true pCTR
        # reaches ~0.76-0.79).
        assert row["ctr_auc"] > 0.7, where

    # The pCVR models rank all test impressions better than chance, against
    # the counterfactual conversion labels (the true pCVR reaches 0.78). Not
    # the clicked-rows baseline in the sparse fast regime: it trains on ~600
    # clicked rows with ~60 conversions and a 60-row validation split, and
    # lands anywhere from chance (0.53) to 0.7 depending on that split. The
    # full run measures it over seeds.
    for _, row in runs[runs["model"].isin(models)].iterrows():
        where = f"{row['model']}, {row['regime']}"
        assert np.isfinite(row["cvr_auc_all"]) and np.isfinite(row["cvr_corr"]), where
        if row["regime"] == "dense" or "ESMM" in row["model"]:
            assert row["cvr_auc_all"] > 0.6, where
            assert row["cvr_corr"] > 0.2, where
    reference = runs[runs["model"] == "true pCVR (reference)"]
    assert (reference["cvr_auc_all"] > 0.75).all()


def test_debiased_objectives_study_fast(tmp_path, capsys):
    # The study of cvr_objective (docs/esmm.md), small: one seed, two rho
    # values, the dense regime. It asserts the bookkeeping (every model is
    # paired with ESMM on the same data, per rho) and that every model's
    # pCVR is usable, not which model wins.
    example = load_example("esmm_simulation")
    out = tmp_path / "study.csv"
    args = ["--fast", "--models", "clicked", "masked", "esmm", "ips", "dr", "--rho", "0", "0.8",
            "--regimes", "dense", "--n-train", "5000", "--n-test", "4000", "--reference", "esmm"]
    result = example.main([*args, "--out", str(out)])
    capsys.readouterr()
    runs = pd.DataFrame(result["runs"])
    models = ["CVR on clicks (baseline)", "masked multi-task", "ESMM (shared-bottom)",
              "IPS (shared-bottom)", "DR (shared-bottom)"]
    assert set(runs["model"]) == {"true pCVR (reference)", *models}
    assert sorted(runs["rho"].unique()) == [0.0, 0.8]
    for _, row in runs[runs["model"].isin(models)].iterrows():
        where = f"{row['model']}, rho={row['rho']}"
        assert np.isfinite(row["cvr_auc_all"]) and row["cvr_auc_all"] > 0.55, where
        assert np.isfinite(row["cvr_bias"]) and abs(row["cvr_bias"]) < 0.08, where
        if row["model"].startswith(("IPS", "DR")):
            assert row["max_joint_gap"] <= 1e-12, where

    pairs = result["paired"]
    assert len(pairs) == 2 * (len(models) - 1)
    assert set(pairs["reference"]) == {"ESMM (shared-bottom)"}
    assert (pairs["seeds"] == 1).all()
    for column in ("cvr_auc_all", "cvr_corr", "cvr_abs_bias", "cvr_ece"):
        assert pairs[f"{column}_wins"].isin([0, 1]).all()
    # A paired difference is the model's metric minus ESMM's on the same seed.
    dr = runs[(runs["model"] == "DR (shared-bottom)") & (runs["rho"] == 0.8)]["cvr_auc_all"].item()
    esmm = runs[(runs["model"] == "ESMM (shared-bottom)") & (runs["rho"] == 0.8)]["cvr_auc_all"].item()
    row = pairs[(pairs["model"] == "DR (shared-bottom)") & (pairs["rho"] == 0.8)]
    assert row["d_cvr_auc_all_mean"].item() == pytest.approx(dr - esmm)

    # The tables can be rebuilt from the per-seed CSV without fitting again.
    again = example.main(["--from-runs", str(tmp_path / "study_runs.csv"), "--reference", "esmm",
                          "--out", str(tmp_path / "again.csv")])
    capsys.readouterr()
    pd.testing.assert_frame_equal(
        again["paired"].reset_index(drop=True), pairs.reset_index(drop=True), check_dtype=False
    )
