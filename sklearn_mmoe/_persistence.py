"""Persistence of a fitted estimator: portable state, no torch objects.

:class:`_PersistenceMixin` gives the estimator ``__getstate__`` and
``__setstate__``: the network, loss and optimizer are stored as numpy state
dicts and the history as plain lists, and loading rebuilds the skorch net
with the estimator's ``_make_net`` after checking the stored shapes.
"""

import warnings

import numpy as np
import torch
from skorch.history import History

from . import _random
from ._training import _meta_module, _WeightAverage
from ._version import __version__


def _numpy_tree(obj):
    """Tensors -> numpy arrays, recursively (dict keys become strings)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {str(k): _numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_tree(v) for v in obj)
    return obj


def _torch_tree(obj, device):
    """Inverse of _numpy_tree: numpy arrays -> tensors, integer-like keys -> ints."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj)).to(device)
    if isinstance(obj, dict):
        return {(int(k) if k.isdigit() else k): _torch_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_tree(v, device) for v in obj)
    return obj


def _plain_row(row):
    """A skorch history row as plain data (numbers, strings, lists, dicts)."""
    return {
        k: [dict(b) for b in v] if k == "batches" else (v.tolist() if hasattr(v, "tolist") else v)
        for k, v in row.items()
    }


def _average_state(average):
    """The state of a :class:`_WeightAverage` as plain data, or None."""
    if average is None:
        return None
    return {"half_life": average.half_life, "steps": average.steps,
            "trained": None if average.trained is None else _numpy_tree(average.trained)}


class _PersistenceMixin:
    """Pickling (and skops) of a fitted estimator; see the module docstring."""

    def __getstate__(self):
        """Portable state: no torch objects, only numpy arrays and plain data.

        The network, loss and optimizer are saved as numpy state dicts and the
        history as plain lists, so a model fitted on a GPU loads on a CPU-only
        machine, and ``skops.io`` can persist it without pickled code.
        """
        # a copy: BaseEstimator returns the instance's own __dict__ here
        state = dict(super().__getstate__())
        net = state.pop("net_", None)
        if net is not None:
            state["_net_state"] = {
                "device": str(net.device),
                "module": _numpy_tree(net.module_.state_dict()),
                "criterion": _numpy_tree(net.criterion_.state_dict()),
                "optimizer": _numpy_tree(net.optimizer_.state_dict()),
                "history": [_plain_row(row) for row in net.history],
                "weight_average": _average_state(net.weight_average),
            }
        state["_sklearn_mmoe_version"] = __version__
        return state

    def __setstate__(self, state):
        state = dict(state)
        version = state.pop("_sklearn_mmoe_version", None)
        net_state = state.pop("_net_state", None)
        if version != __version__:
            warnings.warn(
                f"This {type(self).__name__} was saved with sklearn-mmoe {version} and is "
                f"loaded with {__version__}; it may not work or give other results. "
                "Refit it with this version if you can.",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)
        if net_state is not None:
            self.net_ = self._restore_net(net_state)

    def _restore_net(self, state):
        device = torch.device(state["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            warnings.warn(
                f"{type(self).__name__} was fitted on {device}, but CUDA is not available "
                "here: loading it on the CPU.",
                UserWarning,
                stacklevel=3,
            )
            device = torch.device("cpu")
        net = self._make_net(
            self.n_features_in_, self._tasks, self._check_task_weights(self.n_tasks_),
            self._seeds, device, self._fitted_loss_options(),
        )
        self._check_stored_state(net, state, device)
        with _random.seeded(0, device):  # initialisation draws, overwritten: not the user's
            net.initialize()
        net.module_.load_state_dict(_torch_tree(state["module"], device))
        net.criterion_.load_state_dict(_torch_tree(state["criterion"], device))
        net.optimizer_.load_state_dict(_torch_tree(state["optimizer"], device))
        net.history = History([dict(row) for row in state["history"]])
        net.weight_average = self._restore_average(net, state.get("weight_average"), device)
        net.module_.eval()
        return net

    def _restore_average(self, net, state, device):
        """The weight average's state (None in files written before it existed)."""
        if state is None:
            return None
        params = _WeightAverage.parameters(net.module_)
        trained = state["trained"]
        if trained is not None and (
            not isinstance(trained, list) or len(trained) != len(params) or any(
                not isinstance(t, np.ndarray) or t.shape != tuple(p.shape)
                for t, p in zip(trained, params)
            )
        ):
            raise ValueError(
                f"This {type(self).__name__}'s stored weight average does not match its "
                "network: the file is damaged or was not written by sklearn-mmoe."
            )
        return _WeightAverage(
            float(state["half_life"]),
            None if trained is None else [_torch_tree(t, device) for t in trained],
            int(state["steps"]),
        )

    def _check_stored_state(self, net, state, device):
        """The stored weights must have the shapes that the parameters give.

        A loaded file (skops, pickle) holds the parameters and the weights
        separately. Before anything is allocated from the parameters, the
        network they describe is built on the meta device and its shapes are
        compared with the stored arrays, whose sizes the file itself bounds: a
        crafted parameter (a width of 1e9) is an error, not an allocation.
        """
        name = type(self).__name__
        try:
            expected = {k: tuple(v.shape) for k, v in _meta_module(net).state_dict().items()}
        # (nn asserts what the estimators validate: a crafted value fails an assert)
        except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
            raise ValueError(f"This {name}'s stored parameters do not build a network: {exc}") from None
        stored = state["module"]
        if not isinstance(stored, dict) or set(stored) != set(expected):
            raise ValueError(
                f"This {name}'s stored weights do not match its parameters: expected the "
                f"tensors {sorted(expected)}."
            )
        for key, shape in expected.items():
            array = stored[key]
            if not isinstance(array, np.ndarray) or array.shape != shape:
                raise ValueError(
                    f"This {name}'s stored weight {key} has shape "
                    f"{getattr(array, 'shape', type(array).__name__)}, but its parameters "
                    f"give {shape}: the file is damaged or was not written by sklearn-mmoe."
                )
        self._check_network_size(net, device)

