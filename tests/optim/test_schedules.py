"""Learning-rate schedules: janelia_core semantics without its bugs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamreg.optim import format_and_check_learning_rates, learning_rate_at


@pytest.mark.parametrize("value", [0.01, 1, np.float32(0.5), np.int64(2), torch.tensor(0.25)])
def test_a_number_is_a_schedule_from_zero(value):
    """One number, of any numeric type, applies from iteration 0."""
    its, values = format_and_check_learning_rates(value)
    assert its.tolist() == [0]
    assert values.shape == (1, 1)
    assert values[0, 0] == pytest.approx(float(value))


def test_entries_are_sorted_with_their_values():
    """Entries come back sorted by iteration, values as a 2-D float array."""
    its, values = format_and_check_learning_rates([(1000, 0.001, 0.3), (0, 0.01, 0.2), (10000, 0.0001, 0.4)])
    assert its.tolist() == [0, 1000, 10000]
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [[0.01, 0.2], [0.001, 0.3], [0.0001, 0.4]])


def test_values_may_be_any_object():
    """A dict of per-group rates is kept as an object column."""
    _, values = format_and_check_learning_rates([(0, 0.1, {"a": 1}), [5, 0.2, {"a": 2}]])
    assert values.dtype == object
    assert values[1, 1] == {"a": 2}


def test_value_in_force():
    """The active row is the last entry at or before the iteration."""
    its, values = format_and_check_learning_rates([(0, 1.0), (10, 0.5), (20, 0.25)])
    got = [float(learning_rate_at(its, values, i)[0]) for i in (0, 9, 10, 19, 20, 1000)]
    assert got == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="iteration must be >= 0; got -1"):
        learning_rate_at(its, values, -1)


@pytest.mark.parametrize(("schedule", "message"), [
    ([(0, 0.1), (5, 0.2), (5, 0.3)], r"more than one entry for iteration\(s\) \[5\]"),
    ([(0, 0.1), (-2, 0.2)], r"iterations must be >= 0; got \[-2\]"),
    ([(0, 0.1, 0.2), (5, 0.3)], r"same number of values; got entry lengths \[2, 3\]"),
    ([], "must not be empty"),
    ([(3, 0.1)], "must have an entry for iteration 0; the first is at 3"),
    ([0.1, 0.2], r"learning_rates\[0\] must be a tuple \(iteration, value, ...\); got 0.1"),
    ([(0.5, 0.1)], r"learning_rates\[0\] iteration must be an integer; got 0.5"),
    ([(0,)], r"learning_rates\[0\] must be a tuple"),
    ("0.1", "must be a number or a list"),
    (True, "must be a number or a list"),
    (None, "must be a number or a list"),
    (np.array("x"), "must be a number or a list"),
])
def test_every_error_case(schedule, message):
    """Each malformed schedule raises ValueError with a message naming the problem."""
    with pytest.raises(ValueError, match=message):
        format_and_check_learning_rates(schedule)
