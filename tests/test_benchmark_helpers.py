"""The statistics the benchmark scripts report (``benchmarks/_delong.py``)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _delong import paired_auc_difference  # noqa: E402


def _pairwise_delong(y, a, b):
    """DeLong's variance from every positive-negative comparison (the O(m n) definition)."""
    positive, negative = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def kernel(s):
        d = s[positive][:, None] - s[negative][None, :]
        return (d > 0) + 0.5 * (d == 0)

    ka, kb = kernel(a), kernel(b)
    v10 = np.vstack([ka.mean(1), kb.mean(1)])
    v01 = np.vstack([ka.mean(0), kb.mean(0)])
    s = np.cov(v10) / len(positive) + np.cov(v01) / len(negative)
    return np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])


@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, then many ties
def test_paired_auc_difference_matches_the_pairwise_definition(decimals):
    rng = np.random.RandomState(0)
    y = (rng.rand(600) < 0.3).astype(int)
    a = y + rng.randn(600)
    b = 0.7 * y + 0.5 * a + rng.randn(600)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    difference, se, p = paired_auc_difference(y, a, b)
    assert difference == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    assert se == pytest.approx(_pairwise_delong(y, a, b), rel=1e-9)
    assert 0 < p < 1


def test_paired_auc_difference_standard_error_matches_the_bootstrap():
    rng = np.random.RandomState(1)
    y = (rng.rand(1500) < 0.2).astype(int)
    a = y + rng.randn(1500)
    b = y + 0.6 * a + 1.2 * rng.randn(1500)
    _, se, _ = paired_auc_difference(y, a, b)
    draws = []
    for _ in range(400):
        rows = rng.randint(0, len(y), len(y))
        draws.append(roc_auc_score(y[rows], a[rows]) - roc_auc_score(y[rows], b[rows]))
    assert se == pytest.approx(np.std(draws), rel=0.15)


def test_paired_auc_difference_of_one_ranking_is_zero_with_p_one():
    rng = np.random.RandomState(2)
    y = (rng.rand(200) < 0.5).astype(int)
    a = rng.rand(200)
    # a monotone transform ranks the rows the same way
    assert paired_auc_difference(y, a, np.log(a)) == (0.0, 0.0, 1.0)


def test_paired_auc_difference_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        paired_auc_difference(np.ones(5), np.arange(5), np.arange(5))


def test_bench_defaults_report_pairs_each_seed_with_boosting(capsys):
    """The summary's per-seed cost ratios and the DeLong lines pair rows by seed."""
    import bench_defaults

    rng = np.random.RandomState(3)
    y = np.column_stack([rng.rand(400) < 0.4, rng.rand(400) < 0.5]).astype(int)
    rows = []
    for seed, (hgb_cpu, net_cpu) in enumerate([(1.0, 5.0), (2.0, 6.0)]):
        common = dict(dataset="toy", inputs="raw", seed=seed, wall=0.0, best=None, params=None,
                      y_test=y)
        hgb = y + rng.randn(*y.shape)
        rows.append(dict(common, model="HGB", cpu=hgb_cpu, epochs=None, proba=hgb,
                         auc=[roc_auc_score(y[:, t], hgb[:, t]) for t in range(2)]))
        net = hgb + 2 * rng.randn(*y.shape)  # the same signal, noisier: a lower AUC
        rows.append(dict(common, model="mmoe", cpu=net_cpu, epochs=7, proba=net,
                         auc=[roc_auc_score(y[:, t], net[:, t]) for t in range(2)]))
    names = {"toy": ["a", "b"]}
    bench_defaults.summarize(rows, names)
    bench_defaults.compare_with_boosting(rows, names)
    out = capsys.readouterr().out
    # mean CPU 5.5 over HGB's mean 1.5; per seed 5.0 / 1.0 and 6.0 / 2.0
    assert "= 3.67x HGB (seeds 3.00-5.00x)" in out
    line = next(s for s in out.splitlines() if "mmoe" in s and "vs HGB" in s)
    expected = [paired_auc_difference(y[:, 0], r["proba"][:, 0], h["proba"][:, 0])[0]
                for h, r in zip(rows[::2], rows[1::2])]
    assert f"a {np.mean(expected):+.4f} +- " in line
    assert np.mean(expected) < 0


def test_bench_defaults_compares_one_hot_rows_with_both_boosting_inputs(capsys):
    """A one-hot network row is compared with HGB on the raw frame and on the same
    one-hot input; a raw row only with the raw frame."""
    import bench_defaults

    rng = np.random.RandomState(4)
    y = (rng.rand(300, 1) < 0.5).astype(int)
    cpu = {("HGB", "raw"): 1.0, ("HGB", "onehot"): 4.0, ("mmoe", "raw"): 5.0, ("mmoe", "onehot"): 6.0}
    rows = [dict(dataset="toy", inputs=inputs, model=model, seed=0, wall=0.0, cpu=c, epochs=None,
                 best=None, params=None, y_test=y, proba=y + rng.randn(300, 1), auc=[0.5])
            for (model, inputs), c in cpu.items()]
    names = {"toy": ["a"]}
    bench_defaults.summarize(rows, names)
    bench_defaults.compare_with_boosting(rows, names)
    out = capsys.readouterr().out.splitlines()
    assert any("onehot mmoe" in s and "= 6.00x HGB (seeds 6.00-6.00x), 1.50x HGB one-hot" in s
               for s in out)
    compared = sorted(s.split()[1] + " vs " + s.split()[5] for s in out if "vs HGB" in s)
    assert compared == ["onehot vs onehot", "onehot vs raw", "raw vs raw"]
