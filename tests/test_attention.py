"""models/attention.py: jax.nn.dot_product_attention behind Flax's MultiHeadDotProductAttention
computes Flax's own attention, and a shape cuDNN refuses falls back to XLA instead of failing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models import attention


def _qkv(t=16, s=16):
    k = jax.random.split(jax.random.key(0), 3)
    return (jax.random.normal(k[0], (2, t, 4, 8)), jax.random.normal(k[1], (2, s, 4, 8)),
            jax.random.normal(k[2], (2, s, 4, 8)))


def test_causal_flag_equals_flax_attention_with_a_causal_mask():
    q, k, v = _qkv()
    expected = nn.dot_product_attention(q, k, v, mask=nn.make_causal_mask(jnp.zeros((2, 16))))
    np.testing.assert_allclose(attention.dot_product_attention(q, k, v, is_causal=True), expected, atol=1e-5)


def test_float_padding_mask_equals_flax_attention():
    q, k, v = _qkv(t=6, s=10)
    keep = jnp.arange(10)[None, :] < jnp.array([[7], [10]])  # two sources, 7 and 10 real tokens
    mask = nn.make_attention_mask(jnp.ones((2, 6)), keep)  # float 0/1, as Flax builds it
    expected = nn.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(attention.dot_product_attention(q, k, v, mask=mask), expected, atol=1e-5)
    assert not np.allclose(nn.dot_product_attention(q, k, v), expected, atol=1e-3)  # the mask matters


def test_a_shape_cudnn_refuses_falls_back_to_xla(monkeypatch):
    # As on a GPU: float32 (or no cuDNN at all, here) is refused by the fused kernel's checks.
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    q, k, v = _qkv()
    expected = nn.dot_product_attention(q, k, v, mask=nn.make_causal_mask(jnp.zeros((2, 16))))
    np.testing.assert_allclose(attention.dot_product_attention(q, k, v, is_causal=True), expected, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_gpt_block_attends_as_its_mask_says(causal):
    from aigc_jax.models.gpt import Block

    block = Block(heads=2, causal=causal)
    x = jax.random.normal(jax.random.key(1), (1, 8, 16))
    params = block.init(jax.random.key(2), x)
    changed = x.at[:, -1].multiply(-1.0)  # only the last position differs
    before, after = block.apply(params, x), block.apply(params, changed)
    earlier_moved = not np.allclose(before[:, :-1], after[:, :-1], atol=1e-6)
    assert earlier_moved == (not causal)


@pytest.mark.parametrize("length", [64, 100, 128])  # 2, 4 (the last one short) and 4 query blocks
def test_causal_attention_in_query_blocks_equals_one_masked_attention(length, monkeypatch):
    q, k, v = _qkv(t=length, s=length)
    blocked = []
    monkeypatch.setattr(attention, "_causal_in_query_blocks",
                        lambda *a, f=attention._causal_in_query_blocks: blocked.append(a[-1]) or f(*a))
    mask = nn.make_causal_mask(jnp.zeros((2, length)))

    def loss(fn):
        return lambda q, k, v: (fn(q, k, v) * jnp.cos(v)).sum()

    mine = jax.value_and_grad(loss(lambda q, k, v: attention.dot_product_attention(q, k, v, is_causal=True)),
                              argnums=(0, 1, 2))(q, k, v)
    flax = jax.value_and_grad(loss(lambda q, k, v: nn.dot_product_attention(q, k, v, mask=mask)),
                              argnums=(0, 1, 2))(q, k, v)
    assert blocked == [attention.CAUSAL_BLOCK]  # the blocked path ran, once
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(flax)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
