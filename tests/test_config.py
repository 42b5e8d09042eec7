"""Config overrides: types parsed from text, unknown keys and bad values rejected with one line."""

import pytest

from aigc_jax.engine.config import apply_overrides, base_config, validate
from aigc_jax.errors import UserError


def test_overrides_are_parsed_to_the_field_type():
    c = base_config()
    c.hidden = (256, 128)
    c.flag = False
    out = apply_overrides(c, {"steps": "12", "learning_rate": "3e-4", "parallel": "pmap",
                              "hidden": "64,32", "flag": "true"})
    assert out.steps == 12 and out.learning_rate == 3e-4 and out.parallel == "pmap"
    assert out.hidden == (64, 32) and out.flag is True
    assert c.steps == 1000  # the input config is untouched


@pytest.mark.parametrize("overrides, words", [
    ({"stepz": "1"}, "unknown config key 'stepz'"),
    ({"steps": "ten"}, "expected an integer"),
    ({"learning_rate": "fast"}, "expected a number"),
])
def test_bad_overrides(overrides, words):
    with pytest.raises(UserError, match=words):
        apply_overrides(base_config(), overrides)


@pytest.mark.parametrize("key, value, words", [
    ("steps", 0, "expected a value >= 1"),
    ("batch_size", -4, "expected a value >= 1"),
    ("learning_rate", 0.0, "expected a number > 0"),
    ("parallel", "vmap", "expected one of jit, sharded, shard_map, pmap"),
])
def test_out_of_range_values(key, value, words):
    c = base_config()
    c[key] = value
    with pytest.raises(UserError, match=words):
        validate(c)
