"""Search space: validation messages, conditions, sampling, keys, JSON, encoding (with hypothesis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploybench import Categorical, Condition, Float, Integer, InvalidConfigError, Ordinal, SearchSpace


def deployment_like() -> SearchSpace:
    return SearchSpace([
        Categorical("model", choices=("resnet18", "resnet50", "mobilenet_v2")),
        Categorical("backend", choices=("pytorch_eager", "torch_compile", "onnxruntime")),
        Ordinal("batch_size", values=(1, 2, 4, 8, 16, 32), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("pytorch_eager", "onnxruntime"))),
        Float("lr", low=1e-4, high=1e-1, log=True),
        Integer("width", low=8, high=512, log=True),
    ])


SPACE = deployment_like()


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_every_sample_validates_and_round_trips(seed):
    config = SPACE.sample(np.random.default_rng(seed))
    SPACE.validate(config)
    assert set(config) == set(SPACE.active_names(config))
    # canonical key is stable under dict order and through JSON
    shuffled = dict(reversed(list(config.items())))
    assert SPACE.key(shuffled) == SPACE.key(config)
    assert SPACE.key(json.loads(json.dumps(config))) == SPACE.key(config)
    enc = SPACE.encode(config)
    assert enc.shape == (SPACE.encoding_width,)
    assert np.all((enc >= 0) & (enc <= 1))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), scale=st.floats(0.01, 1.0))
def test_perturb_stays_valid_and_changes_the_config(seed, scale):
    rng = np.random.default_rng(seed)
    config = SPACE.sample(rng)
    for name in SPACE.active_names(config):
        moved = SPACE.perturb(config, name, scale, rng)
        SPACE.validate(moved)
        assert SPACE.key(moved) != SPACE.key(config)


def test_json_round_trip_and_signature():
    again = SearchSpace.from_json(json.loads(json.dumps(SPACE.to_json())))
    assert again == SPACE
    assert again.signature() == SPACE.signature()
    other = SearchSpace([*SPACE.params[:-1], Integer("width", low=8, high=256, log=True)])
    assert other.signature() != SPACE.signature()


def test_conditions_are_declarative_and_enforced():
    rng = np.random.default_rng(0)
    seen = {"with": 0, "without": 0}
    for _ in range(300):
        c = SPACE.sample(rng)
        if c["backend"] == "torch_compile":
            assert "threads" not in c
            seen["without"] += 1
        else:
            assert 1 <= c["threads"] <= 8
            seen["with"] += 1
    assert seen["with"] and seen["without"]
    bad = {"model": "resnet18", "backend": "torch_compile", "batch_size": 4, "threads": 2, "lr": 0.01, "width": 16}
    with pytest.raises(InvalidConfigError, match="'threads' is set but inactive.*backend in"):
        SPACE.validate(bad)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "resnet81"}, r"parameter 'model'.*did you mean 'resnet18'.*allowed: one of"),
        ({"batch_size": 3}, r"parameter 'batch_size': value 3 .*allowed: one of the ordered values 1, 2, 4"),
        ({"threads": 9}, r"parameter 'threads': value 9 is not allowed \(out of range\); allowed: integer in \[1, 8\]"),
        ({"threads": 2.5}, r"'threads'.*not an integer"),
        ({"lr": float("nan")}, r"'lr'.*out of range"),
        ({"modle": "resnet18"}, r"unknown parameter 'modle'.*did you mean 'model'"),
    ],
)
def test_validation_messages_name_parameter_and_domain(change, message):
    config = {"model": "resnet18", "backend": "pytorch_eager", "batch_size": 4, "threads": 2, "lr": 0.01, "width": 16}
    config.update(change)
    with pytest.raises(InvalidConfigError, match=message):
        SPACE.validate(config)


def test_missing_active_parameter_is_reported():
    with pytest.raises(InvalidConfigError, match="'threads' is active but missing"):
        SPACE.validate({"model": "resnet18", "backend": "onnxruntime", "batch_size": 4, "lr": 0.01, "width": 16})


def test_seeded_sampling_is_reproducible():
    a = [SPACE.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [SPACE.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b


def test_log_integer_sampling_is_log_uniform():
    p = Integer("w", low=1, high=1024, log=True)
    rng = np.random.default_rng(0)
    draws = np.array([p.sample(rng) for _ in range(20000)])
    # log-uniform: about half of the draws below sqrt(1024) = 32
    assert 0.42 < np.mean(draws < 32) < 0.58
    assert draws.min() >= 1 and draws.max() <= 1024


def test_encoding_is_one_hot_scaled_and_flags_inactive():
    names = SPACE.encoding_names()
    assert "model=resnet18" in names and "threads:inactive" in names
    c = {"model": "resnet50", "backend": "torch_compile", "batch_size": 32, "lr": 1e-4, "width": 512}
    enc = dict(zip(names, SPACE.encode(c)))
    assert enc["model=resnet50"] == 1.0 and enc["model=resnet18"] == 0.0
    assert enc["batch_size"] == pytest.approx(1.0)
    assert enc["lr"] == pytest.approx(0.0)
    assert enc["width"] == pytest.approx(1.0)
    assert enc["threads:inactive"] == 1.0 and enc["threads"] == 0.0


def test_grid_enumerates_finite_spaces_exactly():
    space = SearchSpace([
        Categorical("backend", choices=("eager", "compile")),
        Ordinal("bs", values=(1, 2, 4)),
        Integer("threads", low=1, high=2, condition=Condition("backend", ("eager",))),
    ])
    grid = list(space.grid())
    assert len(grid) == 2 * 3 + 3  # eager: 3 bs x 2 threads; compile: 3 bs
    assert len({space.key(c) for c in grid}) == len(grid)
    for c in grid:
        space.validate(c)
    with pytest.raises(ValueError, match="finite"):
        list(SPACE.grid())


def test_bad_declarations_are_rejected():
    with pytest.raises(ValueError, match="must be declared before"):
        SearchSpace([Integer("t", low=1, high=2, condition=Condition("b", ("x",))), Categorical("b", choices=("x",))])
    with pytest.raises(ValueError, match="log-scaled range must be positive"):
        Float("x", low=0.0, high=1.0, log=True)
    with pytest.raises(ValueError, match="strictly increasing"):
        Ordinal("bs", values=(4, 2))
