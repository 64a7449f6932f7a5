"""The architecture specifications agree with the estimators, the modules and the docs.

Each architecture is specified once (sklearn_mmoe._architectures); the
estimator classes keep explicit ``__init__`` signatures (scikit-learn reads
them), the modules of sklearn_mmoe.nn have their own defaults, and the
docstrings state defaults in words: these tests catch one of them drifting.
"""

import ast
import inspect
import re

import pytest

from sklearn_mmoe import ESMMClassifier, MultiTaskEstimator, nn
from sklearn_mmoe._architectures import ALL_PARAMS, ARCHITECTURES
from sklearn_mmoe._estimators import estimator_class

KINDS = ("Classifier", "Regressor")
ESTIMATORS = [estimator_class(a, k) for a in ARCHITECTURES for k in KINDS]


def _defaults(cls):
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _module_default(module, name):
    """The default of ``name`` in the first ``__init__`` of ``module``'s MRO that names it."""
    for klass in module.__mro__:
        parameters = inspect.signature(klass.__init__).parameters
        if name in parameters:
            return parameters[name].default
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return inspect.Parameter.empty


def _documented_defaults(cls):
    """{parameter: default} as the class docstring's Parameters section states them."""
    section = cls.__doc__.split("Parameters\n----------\n")[1].split("\nAttributes\n")[0]
    defaults = {}
    for name, default in re.findall(r"^(\w+) : .*default=(.+)$", section, re.MULTILINE):
        defaults[name] = ast.literal_eval(default)
    return defaults


def _common_parameters():
    """The parameters every per-architecture estimator has (and classifiers' class_weight)."""
    sets = [set(inspect.signature(cls).parameters) for cls in ESTIMATORS]
    return set.intersection(*sets) | {"class_weight"}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_signature_lists_the_specified_parameters(cls):
    spec = next(a for a in ARCHITECTURES.values() if cls.__name__.startswith(a.type_prefix))
    parameters = list(inspect.signature(cls).parameters)
    own = [p for p in parameters if p not in _common_parameters()]
    assert own == list(spec.params)
    assert cls()._module_class is spec.module
    assert set(spec.params) <= set(cls._parameter_constraints)


@pytest.mark.parametrize("cls", [*ESTIMATORS, MultiTaskEstimator, ESMMClassifier],
                         ids=lambda c: c.__name__)
def test_documented_defaults_are_the_signatures(cls):
    documented = _documented_defaults(cls)
    signature = _defaults(cls)
    assert set(documented) == set(signature)
    for name, default in signature.items():
        assert documented[name] == default, name


@pytest.mark.parametrize("name", ALL_PARAMS)
def test_estimator_and_module_defaults_agree(name):
    """One default per parameter: the per-architecture estimators',
    MultiTaskEstimator's and the nn module's (where it has the parameter)."""
    defaults = {MultiTaskEstimator.__name__: _defaults(MultiTaskEstimator)[name]}
    for spec in ARCHITECTURES.values():
        if name not in spec.params:
            continue
        for kind in KINDS:
            cls = estimator_class(spec.name, kind)
            defaults[cls.__name__] = _defaults(cls)[name]
        module_default = _module_default(spec.module, name)
        if module_default is not inspect.Parameter.empty:
            defaults[spec.module.__name__] = module_default
    assert len({repr(v) for v in defaults.values()}) == 1, defaults


@pytest.mark.parametrize("name", ["activation", "dropout"])
def test_shared_layer_defaults_agree_with_every_module(name):
    expected = _defaults(MultiTaskEstimator)[name]
    for spec in ARCHITECTURES.values():
        assert _module_default(spec.module, name) == expected, spec.module.__name__


def test_cvr_defaults_agree_with_the_loss():
    for cls in (MultiTaskEstimator, ESMMClassifier):
        for name in ("cvr_objective", "cvr_weight", "ctcvr_weight", "propensity_clip",
                     "propensity_normalization"):
            assert _defaults(cls)[name] == _module_default(nn.MaskedMultiTaskLoss, name), name
