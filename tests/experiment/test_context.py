"""Context: moving, DDP wrapping, state_dict round trips of every supported type, strict loading."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from streamreg.experiment import (
    Context,
    Recorder,
    SmartDataLoader,
    load_checkpoint,
    move_to_device,
    save_checkpoint,
)
from streamreg.filters import LowPass

Pair = collections.namedtuple("Pair", ["a", "b"])


class WithExtras(nn.Linear):
    """A module with a custom method and attribute, to check the DDP wrapper forwards them."""

    label = "extras"

    def doubled(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self(x)


def _trained_adam() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_to_moves_modules_tensors_optimizer_state_and_loader_keeping_container_types():
    """to('meta') reaches every tensor, in place for modules and optimizers; containers keep their types."""
    ctx = Context()
    ctx.optimizer = None
    ctx.model, ctx.optimizer = _trained_adam()  # optimizer registered before its module is moved
    ctx.loader = SmartDataLoader(torch.utils.data.TensorDataset(torch.zeros(4)), loading_bar=False,
                                 rank=0, num_replicas=1)
    ctx.nested = collections.OrderedDict(t=(torch.zeros(2), [torch.ones(1)]), p=Pair(torch.ones(1), 3))
    ctx.counts = collections.defaultdict(int, {"x": torch.zeros(1)})

    assert ctx.to("meta") is ctx

    assert ctx.model.weight.device.type == "meta"
    state = ctx.optimizer.state[ctx.model.weight]
    assert state["exp_avg"].device.type == "meta"
    assert ctx.loader.device == torch.device("meta")
    assert type(ctx.nested) is collections.OrderedDict
    assert type(ctx.nested["t"]) is tuple
    assert type(ctx.nested["t"][1]) is list
    assert ctx.nested["t"][0].device.type == "meta"
    assert type(ctx.nested["p"]) is Pair
    assert ctx.nested["p"].a.device.type == "meta"
    assert ctx.nested["p"].b == 3
    assert type(ctx.counts) is collections.defaultdict
    assert ctx.counts["x"].device.type == "meta"


def test_move_to_device_returns_one_object_or_a_tuple():
    """One argument gives the moved object; several give a tuple of them."""
    single = move_to_device("meta", (torch.zeros(1),))
    several = move_to_device("meta", torch.zeros(1), [torch.ones(1)])

    assert type(single) is tuple
    assert single[0].device.type == "meta"
    assert type(several) is tuple
    assert len(several) == 2
    assert several[1][0].device.type == "meta"


def test_loader_batches_follow_the_context_device():
    """After ctx.to(device) the SmartDataLoader moves each batch, tuples kept."""
    ctx = Context()
    ctx.loader = SmartDataLoader(torch.utils.data.TensorDataset(torch.zeros(4), torch.ones(4)), batch_size=2,
                                 loading_bar=False, rank=0, num_replicas=1)
    ctx.to("meta")

    batch = next(iter(ctx.loader))

    assert all(t.device.type == "meta" for t in batch)


@pytest.mark.gpu
def test_cuda_moves_optimizer_state_and_back():
    """cuda() and cpu() move parameters and Adam state both ways."""
    ctx = Context()
    ctx.model, ctx.optimizer = _trained_adam()
    ctx.cuda()
    assert ctx.optimizer.state[ctx.model.weight]["exp_avg"].is_cuda
    ctx.cpu()
    assert not ctx.optimizer.state[ctx.model.weight]["exp_avg"].is_cuda


def test_ddp_without_process_group_raises():
    """ddp() outside a distributed run says what is missing."""
    ctx = Context()
    ctx.model = nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match="process group"):
        ctx.ddp()


@pytest.fixture
def one_rank_group(tmp_path):
    """A one-rank gloo process group, destroyed afterwards."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_ddp_wraps_trainable_modules_on_cpu_and_state_has_no_prefix(one_rank_group):
    """gloo DDP without device_ids; custom attributes reachable; losses left alone; unwrapped state."""
    ctx = Context()
    ctx.model = WithExtras(2, 1)
    ctx.loss = nn.MSELoss()
    ctx.models = {"frozen": nn.Linear(2, 2).requires_grad_(False)}

    ctx.ddp()

    assert isinstance(ctx.model, DistributedDataParallel)
    assert ctx.model.label == "extras"
    x = torch.ones(3, 2)
    assert torch.equal(ctx.model.doubled(x), 2 * ctx.model.module(x))
    assert not isinstance(ctx.loss, DistributedDataParallel)
    assert not isinstance(ctx.models["frozen"], DistributedDataParallel)
    assert sorted(ctx.state_dict()["model"]) == ["bias", "weight"]
    ctx.load_state_dict(ctx.state_dict())


def _full_context(tmp_path: Path) -> Context:
    ctx = Context()
    ctx.model, ctx.optimizer = _trained_adam()
    ctx.scheduler = torch.optim.lr_scheduler.StepLR(ctx.optimizer, step_size=2)
    ctx.optimizer.step()
    ctx.scheduler.step()
    ctx.layer = LowPass(tau=4.0)
    ctx.layer(torch.randn(10, 3))  # now holds streaming state
    ctx.recorder = Recorder(tmp_path / "rec", tensorboard=False)
    ctx.recorder.step()
    ctx.loader = SmartDataLoader(torch.utils.data.TensorDataset(torch.arange(6)), batch_size=2, loading_bar=False,
                                 rank=0, num_replicas=1)
    next(iter(ctx.loader))
    ctx.tensor = torch.arange(5.0)
    ctx.array = np.arange(6, dtype=np.uint16).reshape(2, 3)
    ctx.np_scalar = np.float32(1.5)
    ctx.values = {"int": 3, "float": 0.25, "complex": 1 + 2j, "bool": True, "str": "a,b", "none": None}
    ctx.ordered = collections.OrderedDict(b=[1, (2, 3)], a=Pair(1.0, "x"))
    ctx.best = None
    return ctx


def _fresh_context(tmp_path: Path) -> Context:
    torch.manual_seed(123)
    ctx = Context()
    ctx.model = nn.Linear(3, 2)
    ctx.optimizer = torch.optim.Adam(ctx.model.parameters(), lr=0.1)
    ctx.scheduler = torch.optim.lr_scheduler.StepLR(ctx.optimizer, step_size=2)
    ctx.layer = LowPass(tau=4.0)
    ctx.recorder = Recorder(tmp_path / "rec2", tensorboard=False)
    ctx.loader = SmartDataLoader(torch.utils.data.TensorDataset(torch.arange(6)), batch_size=2, loading_bar=False,
                                 rank=0, num_replicas=1)
    ctx.tensor = torch.zeros(5)
    ctx.array = np.zeros((2, 3), dtype=np.uint16)
    ctx.np_scalar = np.float32(0)
    ctx.values = {"int": 0, "float": 0.0, "complex": 0j, "bool": False, "str": "", "none": None}
    ctx.ordered = collections.OrderedDict(b=[0, (0, 0)], a=Pair(0.0, ""))
    ctx.best = 0.5
    return ctx


def test_state_dict_round_trips_every_supported_type_through_a_checkpoint(tmp_path):
    """Every supported type survives save_checkpoint + load_checkpoint (weights_only) into a fresh Context."""
    original = _full_context(tmp_path)
    path = save_checkpoint(original.state_dict(), 1, directory=tmp_path)
    restored = _fresh_context(tmp_path)

    assert restored.load_state_dict(load_checkpoint(path)) == ([], [])

    for key, value in original.model.state_dict().items():
        assert torch.equal(value, restored.model.state_dict()[key])
    exp_avg = original.optimizer.state[original.model.weight]["exp_avg"]
    assert torch.equal(exp_avg, restored.optimizer.state[restored.model.weight]["exp_avg"])
    assert restored.scheduler.last_epoch == 1
    assert torch.equal(original.layer.y_last, restored.layer.y_last)
    assert restored.recorder.count == 1
    assert restored.loader.state_dict() == {"epoch": 0, "position": 1, "random_seed": original.loader.random_seed}
    assert torch.equal(restored.tensor, torch.arange(5.0))
    assert restored.array.dtype == np.uint16
    assert np.array_equal(restored.array, np.arange(6).reshape(2, 3))
    assert type(restored.np_scalar) is np.float32
    assert restored.np_scalar == 1.5
    assert restored.values == {"int": 3, "float": 0.25, "complex": 1 + 2j, "bool": True, "str": "a,b", "none": None}
    assert [type(v) for v in restored.values.values()] == [int, float, complex, bool, str, type(None)]
    assert type(restored.ordered) is collections.OrderedDict
    assert list(restored.ordered) == ["b", "a"]
    assert restored.ordered["b"] == [1, (2, 3)]
    assert type(restored.ordered["b"][1]) is tuple
    assert type(restored.ordered["a"]) is Pair
    assert restored.ordered["a"] == Pair(1.0, "x")
    assert restored.best is None
    original.recorder.close()
    restored.recorder.close()


def test_state_dict_copies_tensors():
    """A later in-place update does not change a state taken before it."""
    ctx = Context()
    ctx.t = torch.zeros(2)
    state = ctx.state_dict()
    ctx.t += 1
    assert torch.equal(state["t"], torch.zeros(2))


def test_unsaveable_attribute_raises_naming_it():
    """state_dict() refuses what it cannot save and names the attribute and the item inside it."""
    ctx = Context()
    ctx.meta = {"ok": 1, "where": [0, Path("/tmp")]}
    with pytest.raises(TypeError, match=r"ctx\.meta\['where'\]\[1\] of type PosixPath cannot be saved"):
        ctx.state_dict()


def test_underscore_attributes_are_not_registered():
    """Private attributes stay out of the state."""
    ctx = Context()
    ctx._cache = object()
    ctx.epoch = 1
    assert ctx.state_dict() == {"epoch": 1}


def test_strict_load_names_missing_and_unexpected_keys():
    """strict=True reports both kinds of keys by name; strict=False loads the common ones and returns them."""
    ctx = Context()
    ctx.epoch = 0
    ctx.model = nn.Linear(2, 1)
    state = {"epoch": 4, "extra": 1}

    with pytest.raises(KeyError, match=r"missing keys \['model'\].*unexpected keys \['extra'\]"):
        ctx.load_state_dict(state)
    assert ctx.epoch == 0

    assert ctx.load_state_dict(state, strict=False) == (["model"], ["extra"])
    assert ctx.epoch == 4


@pytest.mark.parametrize(("current", "state", "error", "match"), [
    (1, "1", TypeError, r"ctx\.value is a int, but the state holds a str"),
    (1, 1.0, TypeError, "holds a float"),
    ((1, 2), (1, 2, 3), ValueError, r"ctx\.value has 2 items, but the state holds 3"),
    ({"a": 1}, {"b": 1}, KeyError, r"ctx\.value: missing keys \['a'\], unexpected keys \['b'\]"),
    ({"a": [1, 2]}, {"a": [1, "x"]}, TypeError, r"ctx\.value\['a'\]\[1\]"),
    (torch.zeros(1), 0.0, TypeError, "is a Tensor"),
    (np.zeros(1), [0.0], TypeError, "is a ndarray"),
])
def test_load_refuses_values_of_another_type(current, state, error, match):
    """Types are kept: a mismatch raises and names the item."""
    ctx = Context()
    ctx.value = current
    with pytest.raises(error, match=match):
        ctx.load_state_dict({"value": state})


def test_load_refuses_a_module_of_another_shape():
    """A parameter-shape mismatch raises and names the attribute."""
    ctx = Context()
    ctx.model = nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match=r"(?s)ctx\.model: .*size mismatch"):
        ctx.load_state_dict({"model": nn.Linear(3, 1).state_dict()})


def test_load_refuses_streaming_state_of_another_model():
    """A Layer's streaming state must come from a model with the same stateful layers."""
    ctx = Context()
    ctx.layer = nn.Sequential(LowPass(tau=2.0))
    state = {"layer": {"parameters": ctx.layer.state_dict(), "streaming_state": {"1": {"y_last": None}}}}
    with pytest.raises(KeyError, match="streaming_state"):
        ctx.load_state_dict(state)


def test_tuples_stay_tuples_after_load():
    """A tuple attribute comes back as a tuple (pystematic turned it into a list)."""
    ctx = Context()
    ctx.shape = (1, 2)
    ctx.load_state_dict({"shape": [3, 4]})
    assert ctx.shape == (3, 4)
    assert type(ctx.shape) is tuple


def test_autotransform_loads_the_checkpoint_and_moves_to_the_run_device(tmp_path):
    """Inside an experiment, autotransform() applies --checkpoint (a run folder) and the device."""
    from streamreg.experiment import experiment, output_dir

    @experiment
    def train(params):
        ctx = Context()
        ctx.model = nn.Linear(2, 1)
        ctx.epoch = 0
        ctx.autotransform()
        if params["checkpoint"] is None:
            ctx.epoch = 3
            save_checkpoint(ctx.state_dict(), ctx.epoch)
        return ctx.epoch, ctx.model.weight.device.type, ctx.model.weight.detach().clone(), output_dir()

    _, _, weight, folder = train.run({"output_dir": tmp_path, "cuda": False, "random_seed": 1})
    assert (folder / "checkpoint-3.pt").is_file()
    resumed = train.run({"output_dir": tmp_path, "cuda": False, "random_seed": 2, "checkpoint": folder})

    assert resumed[0] == 3
    assert resumed[1] == "cpu"
    assert torch.equal(resumed[2], weight)
