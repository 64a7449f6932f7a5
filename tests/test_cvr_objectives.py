"""Debiased conversion-rate objectives of conditional tasks: cvr_objective="ips" and "dr"."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sklearn_mmoe import ESMMClassifier, MultiTaskEstimator
from sklearn_mmoe.nn import MaskedMultiTaskLoss

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _clicks(n=2000, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6))
    click = rng.uniform(size=n) < 1 / (1 + np.exp(-(X[:, 0] - 1)))
    buy = rng.uniform(size=n) < 1 / (1 + np.exp(-(X[:, 1] + 0.5 * X[:, 0])))
    Y = np.column_stack([click, np.where(click, buy, np.nan)]).astype(float)
    return X, Y


def _loss(objective, **options):
    return MaskedMultiTaskLoss(
        ["binary", "binary"], [1, 1], parents=[None, 0], cvr_objective=objective, **options
    )


def _batch(n=64, seed=0, n_columns=3):
    """Random logits (click, conversion, imputation head), labels and weights."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_columns, 1, generator=g) * 2
    click = (torch.rand(n, generator=g) < 0.3).float()
    buy = click * (torch.rand(n, generator=g) < 0.4).float()
    target = torch.stack([click, buy], dim=1)
    weight = torch.ones(n, 2)
    return logits, target, weight


# ----------------------------------------------------------------- the loss
@pytest.mark.parametrize("objective", ["ips", "dr"])
@pytest.mark.parametrize("normalization", ["none", "batch"])
def test_no_gradient_reaches_the_click_output_through_the_propensity(objective, normalization):
    logits, target, weight = _batch()
    logits.requires_grad_(True)
    loss = _loss(objective, ctcvr_weight=0.0, propensity_normalization=normalization)
    loss.per_task(logits, target, weight)[1].backward()
    # Only the counterfactual risk is left in the conversion task's loss: it
    # reads the click output only through the detached propensity.
    assert torch.count_nonzero(logits.grad[:, 0]) == 0
    assert torch.count_nonzero(logits.grad[target[:, 0] == 1, 1]) > 0
    # With ESMM's joint loss, the click output does get a gradient (through p(click) p(buy | click)).
    logits.grad = None
    _loss(objective).per_task(logits, target, weight)[1].backward()
    assert torch.count_nonzero(logits.grad[:, 0]) > 0


def test_propensity_clipping_bounds_every_weight():
    clip = 0.05
    loss = _loss("ips", propensity_clip=clip, ctcvr_weight=0.0)
    logits = torch.linspace(-30, 30, 201).reshape(-1, 1, 1).expand(-1, 3, 1).contiguous()
    p = loss.propensity(logits)[:, 0]
    assert torch.all(p >= clip) and torch.all(p <= 1)
    above = torch.sigmoid(logits[:, 0, 0]) >= clip
    assert torch.equal(p[above], torch.sigmoid(logits[above, 0, 0]))
    assert torch.all(p[~above] == clip)
    # A click with a vanishing predicted click rate weighs 1 / clip, not 1 / p.
    logits = torch.tensor([[[-40.0], [0.0]]])
    target = torch.tensor([[1.0, 1.0]])
    value = loss.per_task(logits, target, torch.ones(1, 2))[1]
    torch.testing.assert_close(value, torch.tensor(np.log(2) / clip, dtype=torch.float32))


def _reference(objective, logits, target, weight, clip, normalization, cvr_w, ctcvr_w):
    """The documented per-row formulas, written out independently (float64)."""
    z_click, z, z_imp = (logits[:, k, 0].double() for k in range(3))
    o, y, w = target[:, 0].double(), target[:, 1].double(), weight[:, 1].double()
    p = torch.sigmoid(z_click).clamp(min=clip)
    ipw = o / p
    if normalization == "batch":
        ipw = ipw / ((w * ipw).sum() / w.sum())
    p_joint = torch.sigmoid(z_click) * torch.sigmoid(z)
    ctcvr = -(y * torch.log(p_joint) + (1 - y) * torch.log1p(-p_joint))
    e = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    if objective == "ips":
        risk = ipw * e
    else:
        q = torch.sigmoid(z_imp)
        e_hat = F.binary_cross_entropy_with_logits(z, q, reduction="none")
        risk = e_hat + ipw * (e - e_hat) + ipw * (e - e_hat) ** 2
    row = ctcvr_w * ctcvr + cvr_w * risk
    return (w * row).sum() / w.sum()


@pytest.mark.parametrize("objective", ["ips", "dr"])
@pytest.mark.parametrize("normalization", ["none", "batch"])
def test_loss_values_follow_the_documented_formulas(objective, normalization):
    logits, target, weight = _batch(n=200, seed=3)
    weight[::7, 1] = 0.0  # e.g. a clicked row whose conversion is unknown
    weight[:, 1] *= torch.linspace(0.5, 1.5, 200)  # sample weights
    options = dict(propensity_clip=0.1, propensity_normalization=normalization,
                   cvr_weight=0.7, ctcvr_weight=0.3)
    value = _loss(objective, **options).per_task(logits, target, weight)[1]
    expected = _reference(
        objective, logits, target, weight, 0.1, normalization, 0.7, 0.3
    )
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)


def test_dr_trains_each_part_with_its_own_loss():
    logits, target, weight = _batch(n=100, seed=1)
    loss = _loss("dr", ctcvr_weight=0.0)
    # No click in the batch: the imputation head has nothing to learn from,
    # and the conversion output is pulled towards the imputed probability on
    # every row (the gradient of BCE(logit, q) with q fixed).
    target = torch.zeros_like(target)
    logits.requires_grad_(True)
    loss.per_task(logits, target, weight)[1].backward()
    assert torch.count_nonzero(logits.grad[:, 2]) == 0
    q = torch.sigmoid(logits[:, 2, 0]).detach()
    expected = (torch.sigmoid(logits[:, 1, 0]).detach() - q) / 100
    torch.testing.assert_close(logits.grad[:, 1, 0], expected)
    # With clicks, the imputation head learns from the clicked rows only.
    logits.grad = None
    _, target, _ = _batch(n=100, seed=1)
    loss.per_task(logits, target, weight)[1].backward()
    clicked = target[:, 0] == 1
    assert torch.count_nonzero(logits.grad[~clicked, 2]) == 0
    assert torch.count_nonzero(logits.grad[clicked, 2]) > 0


def _expected_cvr_gradient(objective, z_click, z_cvr, z_imp, p_click, r):
    """Gradient on the conversion logit, in expectation over click and conversion.

    Each row is drawn as click ~ Bernoulli(p_click) and, independently given
    the row, conversion ~ Bernoulli(r), observed only where clicked: the three
    outcomes are enumerated with their probabilities (no sampling).
    """
    loss = _loss(objective, ctcvr_weight=0.0, propensity_clip=1e-3)
    outcomes = [(0.0, 0.0, 1 - p_click), (1.0, 0.0, p_click * (1 - r)), (1.0, 1.0, p_click * r)]
    total = torch.zeros_like(z_cvr)
    for click, buy, probability in outcomes:
        logits = torch.stack([z_click, z_cvr, z_imp], dim=1)[:, :, None].requires_grad_(True)
        target = torch.stack([torch.full_like(z_cvr, click), torch.full_like(z_cvr, buy)], dim=1)
        # sum, not mean, over rows: each row's own gradient
        (loss.elementwise(logits, target)[:, 1]).sum().backward()
        total += probability * logits.grad[:, 1, 0]
    return total


@pytest.mark.parametrize("objective", ["ips", "dr"])
def test_counterfactual_gradients_are_unbiased_as_the_papers_claim(objective):
    # The full-information loss BCE(pCVR, conversion) over every impression
    # has the expected gradient sigmoid(z) - r on the conversion logit. IPS
    # recovers it when the propensity is right; DR when the propensity *or*
    # the imputed conversion rate is right (double robustness), and the
    # imputation loss adds nothing to it (the conversion output is detached
    # there).
    g = torch.Generator().manual_seed(0)
    n = 50
    p_click = 0.05 + 0.9 * torch.rand(n, generator=g)
    r = 0.05 + 0.9 * torch.rand(n, generator=g)
    z_cvr = torch.randn(n, generator=g) * 2
    wrong = torch.randn(n, generator=g) * 2  # logits unrelated to p_click and r
    full_information = torch.sigmoid(z_cvr) - r
    right_propensity = _expected_cvr_gradient(
        objective, torch.logit(p_click), z_cvr, wrong, p_click, r
    )
    torch.testing.assert_close(right_propensity, full_information, rtol=1e-4, atol=1e-5)
    both_wrong = _expected_cvr_gradient(objective, wrong, z_cvr, wrong.flip(0), p_click, r)
    assert (both_wrong - full_information).abs().max() > 0.1
    if objective == "dr":
        right_imputation = _expected_cvr_gradient(
            objective, wrong, z_cvr, torch.logit(r), p_click, r
        )
        torch.testing.assert_close(right_imputation, full_information, rtol=1e-4, atol=1e-5)


def test_esmm_objective_is_the_plain_joint_loss():
    logits, target, weight = _batch(n_columns=2)
    plain = MaskedMultiTaskLoss(["binary", "binary"], [1, 1], parents=[None, 0])
    # ESMM ignores the counterfactual options.
    esmm = _loss("esmm", cvr_weight=5.0, ctcvr_weight=0.0, propensity_clip=0.5)
    assert torch.equal(plain.per_task(logits, target, weight), esmm.per_task(logits, target, weight))
    assert MaskedMultiTaskLoss.extra_outputs([None, 0], "esmm") == 0
    assert MaskedMultiTaskLoss.extra_outputs([None, 0], "ips") == 0
    assert MaskedMultiTaskLoss.extra_outputs([None, 0, None, 2], "dr") == 2


@pytest.mark.parametrize("objective", ["esmm", "ips", "dr"])
def test_confident_joint_predictions_keep_finite_gradients(objective):
    # Click and conversion logits so large that pCTCVR rounds to 1 (an
    # overfitted ESMM fit gets there): the joint loss's log(1 - pCTCVR) must
    # keep a finite gradient on the rows that converted and the rows that did not.
    logits = torch.tensor([[[40.0], [40.0], [0.0]], [[90.0], [95.0], [0.0]], [[20.0], [30.0], [0.0]]])
    logits.requires_grad_()
    target = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    loss = _loss(objective).per_task(logits, target, torch.ones(3, 2)).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_esmm_fit_that_overfits_its_joint_probability_stays_finite():
    # 250 rows and 200 epochs: this fit drove pCTCVR to 1 and its loss to NaN
    # at epoch 135 before _log1mexp kept the gradient of its unused branch finite.
    rng = np.random.RandomState(0)
    X = rng.randn(250, 6)
    click = (X[:, 0] + rng.randn(250) > 0.5).astype(int)
    buy = click * (X[:, 1] + rng.randn(250) > 0).astype(int)
    model = ESMMClassifier(learning_rate=3e-3, random_state=2).fit(X, np.column_stack([click, buy]))
    assert model.n_iter_ == 200 and np.isfinite(model.loss_curve_).all()


def test_loss_rejects_bad_options():
    for options, message in [
        (dict(cvr_objective="dcmt"), "cvr_objective must be one of"),
        (dict(cvr_objective="ips", propensity_clip=0.0), "propensity_clip"),
        (dict(cvr_objective="ips", propensity_clip=1.5), "propensity_clip"),
        (dict(cvr_objective="ips", cvr_weight=-1.0), "cvr_weight"),
        (dict(cvr_objective="ips", ctcvr_weight=float("inf")), "ctcvr_weight"),
        (dict(cvr_objective="ips", cvr_weight=0, ctcvr_weight=0), "both 0"),
        (dict(cvr_objective="ips", propensity_normalization="snips"), "propensity_normalization"),
    ]:
        with pytest.raises(ValueError, match=message):
            MaskedMultiTaskLoss(["binary", "binary"], [1, 1], parents=[None, 0], **options)
    with pytest.raises(ValueError, match="needs a conditional task"):
        MaskedMultiTaskLoss(["binary", "binary"], [1, 1], cvr_objective="dr")


# ------------------------------------------------------------- estimators
def test_esmm_default_is_unchanged_by_the_counterfactual_options():
    X, Y = _clicks(n=800)
    base = ESMMClassifier(bottom_hidden_sizes=(16,), max_epochs=3, random_state=0).fit(X, Y)
    same = ESMMClassifier(
        bottom_hidden_sizes=(16,), max_epochs=3, random_state=0, cvr_objective="esmm",
        cvr_weight=3.0, ctcvr_weight=0.5, propensity_clip=0.2, propensity_normalization="batch",
    ).fit(X, Y)
    for a, b in zip(base.predict_proba(X), same.predict_proba(X)):
        assert np.array_equal(a, b)
    assert base.net_.module_.n_outputs == (1, 1)  # no extra head
    assert base.net_.criterion_.cvr_objective == "esmm"


@pytest.mark.parametrize("objective", ["ips", "dr"])
@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple", "cross_stitch"])
def test_each_objective_fits_and_predicts_on_every_kind_of_architecture(objective, architecture):
    X, Y = _clicks(n=600)
    model = MultiTaskEstimator(
        architecture=architecture, conditional_tasks={1: 0}, cvr_objective=objective,
        n_experts=3, expert_hidden_sizes=(8,), hidden_sizes=(8,), max_epochs=3,
        early_stopping=True, random_state=0,
    ).fit(X, Y)
    assert model.net_.module_.n_outputs == ((1, 1, 1) if objective == "dr" else (1, 1))
    proba = model.predict_proba(X)
    assert len(proba) == 2 and all(p.shape == (600, 2) for p in proba)
    joint = model.predict_joint_proba(X)
    np.testing.assert_allclose(joint[1][:, 1], proba[0][:, 1] * proba[1][:, 1], rtol=0, atol=1e-15)
    assert model.predict(X).shape == (600, 2)
    assert np.isfinite(model.best_validation_loss_)


@pytest.mark.parametrize("objective", ["ips", "dr"])
def test_debiased_objectives_learn_the_conversion_rate(objective):
    X, Y = _clicks(n=4000, seed=2)
    # The simulated conversion rate is a smooth function of two columns:
    # "quantile" suits it, "periodic" (what "auto" picks on larger data) fits
    # it less well (docs/user_guide.md, numeric columns).
    model = ESMMClassifier(
        cvr_objective=objective, bottom_hidden_sizes=(32,), max_epochs=15, learning_rate=3e-3,
        numeric_encoding="quantile", random_state=0,
    ).fit(X, Y)
    p_cvr = model.predict_proba(X)[1][:, 1]
    true_cvr = 1 / (1 + np.exp(-(X[:, 1] + 0.5 * X[:, 0])))
    assert np.corrcoef(p_cvr, true_cvr)[0, 1] > 0.8


def test_dr_with_a_loss_weighting_strategy():
    X, Y = _clicks(n=600)
    model = MultiTaskEstimator(
        architecture="mmoe", conditional_tasks={1: 0}, cvr_objective="dr", n_experts=3,
        expert_hidden_sizes=(8,), loss_weighting="uncertainty", max_epochs=2, random_state=0,
    ).fit(X, Y)
    assert np.all(np.isfinite(model.loss_curve_))


def test_parameters_are_validated_with_their_names():
    X, Y = _clicks(n=300)
    three = Y.copy()
    three[:, 0] = np.where(X[:, 0] > 1, 2, Y[:, 0])  # a 3-class parent
    three[three[:, 0] != 1, 1] = np.nan
    with pytest.raises(ValueError, match="conditional_tasks: task 1 can only be conditional"):
        MultiTaskEstimator(conditional_tasks={1: 0}, cvr_objective="dr").fit(X, three)
    reg = np.column_stack([X[:, 0], Y[:, 1]])
    with pytest.raises(ValueError, match="conditional_tasks: .*task 0 is regression"):
        MultiTaskEstimator(
            conditional_tasks={1: 0}, cvr_objective="ips", task_types=["regression", "classification"]
        ).fit(X, reg)
    with pytest.raises(ValueError, match="cvr_objective='ips'.*conditional_tasks"):
        MultiTaskEstimator(cvr_objective="ips").fit(X, np.nan_to_num(Y))
    with pytest.raises(ValueError, match="cvr_objective='dr'.*give two"):
        ESMMClassifier(cvr_objective="dr").fit(X, Y[:, 0])
    for params, name in [
        (dict(cvr_objective="dcmt"), "cvr_objective"),
        (dict(cvr_weight=-0.5), "cvr_weight"),
        (dict(ctcvr_weight="1"), "ctcvr_weight"),
        (dict(propensity_clip=0.0), "propensity_clip"),
        (dict(propensity_clip=2.0), "propensity_clip"),
        (dict(propensity_normalization="snips"), "propensity_normalization"),
    ]:
        with pytest.raises(ValueError, match=name):
            ESMMClassifier(**params).fit(X, Y)
    with pytest.raises(ValueError, match="cvr_weight and ctcvr_weight are both 0"):
        ESMMClassifier(cvr_objective="ips", cvr_weight=0, ctcvr_weight=0, max_epochs=1).fit(X, Y)


def test_pickle_and_skops_round_trips_keep_the_imputation_head(tmp_path):
    X, Y = _clicks(n=600)
    model = ESMMClassifier(
        cvr_objective="dr", bottom_hidden_sizes=(16,), max_epochs=3, random_state=0
    ).fit(X, Y)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.net_.module_.n_outputs == (1, 1, 1)
    for name, value in model.net_.module_.state_dict().items():
        assert torch.equal(value, restored.net_.module_.state_dict()[name]), name
    assert restored.net_.criterion_.cvr_objective == "dr"
    for a, b in zip(model.predict_proba(X), restored.predict_proba(X)):
        assert np.array_equal(a, b)
    # Training continues from the restored model as from the original one.
    for m in (model, restored):
        m.set_params(warm_start=True, max_epochs=2)
        m.fit(X, Y)
    for a, b in zip(model.predict_proba(X), restored.predict_proba(X)):
        assert np.array_equal(a, b)
    # The fitted loss cannot be switched by a warm start.
    with pytest.raises(ValueError, match="loss options"):
        restored.set_params(cvr_objective="ips").fit(X, Y)

    sio = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("sklearn_mmoe.") for name in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    assert loaded.net_.module_.n_outputs == (1, 1, 1)
    for a, b in zip(model.predict_proba(X), loaded.predict_proba(X)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("objective", ["ips", "dr"])
def test_the_monitored_loss_is_esmms_whatever_the_objective(objective):
    # Reported and early-stopped on: CTR + CTCVR, not the counterfactual risk,
    # whose value depends on the model's own propensities.
    logits, target, weight = _batch()
    plain = MaskedMultiTaskLoss(["binary", "binary"], [1, 1], parents=[None, 0])
    loss = _loss(objective, cvr_weight=2.0, ctcvr_weight=0.5)
    assert torch.equal(loss(logits, target, weight), plain(logits[:, :2], target, weight))
    assert not torch.equal(loss.per_task(logits, target, weight), plain.per_task(logits, target, weight))
    losses = loss.per_task(logits, target, weight)
    assert torch.equal(loss.monitored(logits, target, weight, losses), plain(logits[:, :2], target, weight))


@pytest.mark.parametrize("objective", ["ips", "dr"])
def test_export_serves_the_tasks_and_leaves_the_imputation_head_out(objective):
    ort = pytest.importorskip("onnxruntime")
    from sklearn_mmoe.export import to_onnx, to_torch

    X, Y = _clicks(n=600)
    X = X.astype(np.float32)
    model = ESMMClassifier(
        cvr_objective=objective, bottom_hidden_sizes=(8,), max_epochs=2, random_state=0
    ).fit(X, Y)
    expected = [*model.predict_proba(X), model.predict_joint_proba(X)[1]]
    served = to_torch(model)
    assert served.output_names == ["task0", "task1", "task1_joint"]
    for got, want in zip(served(torch.from_numpy(X)), expected):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5)
    session = ort.InferenceSession(to_onnx(model, X[:1]).SerializeToString())
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    assert len(outputs) == 3
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
