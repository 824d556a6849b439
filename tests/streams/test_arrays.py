"""ArrayStream: a read-only, seekable view of an in-memory array or tensor."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from streamreg.exceptions import ChunkShapeError
from streamreg.streams import ArrayStream


def test_numpy_data_gives_numpy_copies_and_numpy_dtype():
    """numpy data gives numpy frames that do not share memory with it, and a numpy dtype."""
    data = np.arange(24, dtype=np.int16).reshape(6, 2, 2)
    stream = ArrayStream(data)
    chunk = stream.get(4)
    assert stream.dtype == np.dtype(np.int16)
    assert not np.shares_memory(chunk, data)
    np.testing.assert_array_equal(chunk, data[:4])


def test_tensor_data_gives_detached_tensor_clones_and_torch_dtype():
    """Tensor data gives detached tensor clones and a torch dtype."""
    data = torch.arange(12.0, dtype=torch.float64).reshape(6, 2).requires_grad_()
    stream = ArrayStream(data)
    chunk = stream.get(6)
    assert stream.dtype == torch.float64
    assert isinstance(chunk, torch.Tensor)
    assert not chunk.requires_grad
    assert chunk.data_ptr() != data.data_ptr()
    assert torch.equal(chunk, data.detach())


def test_one_dimensional_data_has_scalar_frames():
    """A (T,) array is a stream of T scalar frames of shape ()."""
    stream = ArrayStream(np.arange(5.0))
    assert stream.frame_shape == ()
    assert stream.get(3).tolist() == [0.0, 1.0, 2.0]
    assert len(stream) == 5


def test_stream_wraps_data_without_copying():
    """Changes to the wrapped array after construction are visible to later reads."""
    data = np.zeros((4, 2))
    stream = ArrayStream(data)
    data[3] = 7.0
    np.testing.assert_array_equal(stream.get(4)[3], [7.0, 7.0])


def test_zero_dimensional_data_is_refused():
    """A 0-d array or tensor has no time axis and raises ChunkShapeError naming data."""
    with pytest.raises(ChunkShapeError, match="^data must have shape"):
        ArrayStream(np.ones(()))
    with pytest.raises(ChunkShapeError, match="^data must have shape"):
        ArrayStream(torch.tensor(1.0))


@pytest.mark.parametrize("data", [np.array(["a", "b"]), np.array([object(), None]), np.ones(3, dtype=complex),
                                  torch.ones(2, dtype=torch.complex64)])
def test_non_numeric_dtype_is_refused(data):
    """String, object and complex data raise TypeError naming data."""
    with pytest.raises(TypeError, match="^data must have a numeric dtype"):
        ArrayStream(data)


def test_non_array_data_is_refused():
    """A list is not wrapped: TypeError names data and the type."""
    with pytest.raises(TypeError, match="data must be a numpy array or a torch tensor.*list"):
        ArrayStream([[1.0, 2.0]])


def test_put_is_unsupported_and_seek_past_the_end_is_refused():
    """put raises io.UnsupportedOperation; seek beyond T raises ValueError naming t and the range."""
    stream = ArrayStream(np.ones((3, 2)))
    assert stream.readable() and stream.seekable() and not stream.writable()
    with pytest.raises(io.UnsupportedOperation):
        stream.put(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"t must be a frame index in \[0, 3\].*got 4"):
        stream.seek(4)
    assert stream.seek(3) == 3
    assert stream.get(1).shape == (0, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_get_into_copies_a_cuda_tensor_to_the_host_buffer():
    """get_into on a CUDA tensor fills a numpy buffer in host memory."""
    data = torch.arange(24.0).reshape(6, 4).cuda()
    stream = ArrayStream(data)
    out = np.empty((4, 4), dtype=np.float32)
    assert stream.get_into(out) == 4 and stream.in_memory
    np.testing.assert_array_equal(out, data[:4].cpu().numpy())
