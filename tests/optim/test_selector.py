"""layer.set_optimizer: the tab-completable optimizer builder."""

from __future__ import annotations

import inspect

import pytest
import torch

from streamreg.models import LN
from streamreg.optim import list_optimizers, register_optimizer


def _constructible_torch_optimizers():
    """Independent enumeration: every torch.optim Optimizer subclass that builds on a 2x2 parameter."""
    names = []
    for name, obj in vars(torch.optim).items():
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            try:
                obj([torch.nn.Parameter(torch.zeros(2, 2))])
            except (TypeError, ValueError, RuntimeError):
                continue
            names.append(name)
    return sorted(names)


def test_dir_lists_exactly_the_constructible_optimizers():
    """dir(layer.set_optimizer) is the constructible torch.optim classes, without the abstract base."""
    names = dir(LN().set_optimizer)
    assert names == _constructible_torch_optimizers()
    assert "Optimizer" not in names
    assert {"SGD", "Adam", "LBFGS"} <= set(names)


def test_building_uses_all_trainable_parameters_and_stores_the_optimizer():
    """set_optimizer.Adam(lr=...) covers every trainable parameter and becomes layer.optimizer."""
    model = LN((3, 3, 3), bias=True)
    opt = model.set_optimizer.Adam(lr=0.01)
    assert model.optimizer is opt
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 0.01
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_params_argument_and_frozen_parameters():
    """params= restricts the optimizer; frozen parameters are left out by default."""
    model = LN((3, 3, 3), bias=True)
    model.conv.bias.requires_grad_(False)
    opt = model.set_optimizer.SGD(lr=0.1)
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(model.conv.weight)]
    opt = model.set_optimizer.SGD([model.conv.bias], lr=0.1)
    assert opt.param_groups[0]["params"][0] is model.conv.bias
    assert model.set_optimizer("RMSprop", lr=0.5).param_groups[0]["lr"] == 0.5


def test_unknown_name_lists_valid_ones():
    """An unknown name raises AttributeError listing the valid names."""
    with pytest.raises(AttributeError, match=r"Unknown optimizer 'Adamm'; available: \['ASGD'"):
        LN().set_optimizer.Adamm()
    assert not hasattr(LN().set_optimizer, "Optimizer")


def test_docstrings_and_registration(monkeypatch):
    """Entries carry the optimizer's docstring; registered optimizers appear in dir()."""
    from streamreg.optim import selector

    monkeypatch.setattr(selector, "_REGISTRY", {})
    assert LN().set_optimizer.LBFGS.__doc__ == torch.optim.LBFGS.__doc__

    class Halving(torch.optim.SGD):
        """SGD at half the learning rate."""

    register_optimizer("Halving", Halving)
    assert "Halving" in list_optimizers()
    assert isinstance(LN().set_optimizer.Halving(lr=0.1), Halving)
    with pytest.raises(TypeError, match="must be a torch.optim.Optimizer subclass"):
        register_optimizer("Bad", dict)
    with pytest.raises(ValueError, match="not starting with '_'"):
        register_optimizer("_Hidden", Halving)
