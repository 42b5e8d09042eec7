"""`InputGradFirstDense` is `nn.Dense`: same parameters, values and gradients; and its backward
pass makes the kernel gradient wait for the input gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core
import pytest

from aigc_jax.models.input_grad_first import InputGradFirstDense


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5)])
def test_same_parameters_values_and_gradients_as_flax_dense(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    ours, flax_dense = InputGradFirstDense(7), nn.Dense(7)
    params = ours.init(jax.random.key(1), x)
    reference = flax_dense.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference)
    np.testing.assert_array_equal(params["params"]["kernel"], reference["params"]["kernel"])
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias too
    w = jax.random.normal(jax.random.key(2), (*shape[:-1], 7))

    def loss(module):
        return lambda params, x: jnp.sum(jnp.tanh(module.apply(params, x)) * w)

    np.testing.assert_allclose(ours.apply(params, x), flax_dense.apply(params, x), rtol=1e-6, atol=1e-6)
    grads = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    expected = jax.grad(loss(flax_dense), argnums=(0, 1))(params, x)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_non_finite_input_gradient_does_not_leak_into_the_kernel_gradient():
    x = jnp.ones((4, 3))
    params = {"params": {"kernel": jnp.full((3, 2), jnp.inf), "bias": jnp.zeros(2)}}
    g = jnp.ones((4, 2))
    _, vjp = jax.vjp(lambda p: InputGradFirstDense(2).apply(p, x), params)
    (grads,) = vjp(g)
    np.testing.assert_array_equal(grads["params"]["kernel"], jnp.full((3, 2), 4.0))  # x^T g, finite
    np.testing.assert_array_equal(grads["params"]["bias"], jnp.full(2, 4.0))


def test_the_kernel_gradient_reads_the_input_gradient():
    """In the backward computation the kernel gradient's operand depends on the input gradient."""
    x = jax.random.normal(jax.random.key(0), (8, 5))
    params = InputGradFirstDense(3).init(jax.random.key(1), x)
    _, vjp = jax.vjp(lambda p, x: InputGradFirstDense(3).apply(p, x), params, x)
    jaxpr = jax.make_jaxpr(vjp)(jnp.ones((8, 3))).jaxpr
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 2
    input_grad, kernel_grad = sorted(dots, key=lambda e: e.outvars[0].aval.shape != (8, 5))

    def ancestors(var, seen):
        for e in jaxpr.eqns:
            if var in e.outvars and id(e) not in seen:
                seen.add(id(e))
                for v in e.invars:
                    if not isinstance(v, core.Literal):
                        ancestors(v, seen)
        return seen

    assert id(input_grad) in ancestors(kernel_grad.outvars[0], set())


def test_sharded_over_the_batch_it_communicates_as_flax_dense_does():
    """The zero is taken row by row, so a batch-sharded step adds no collective to nn.Dense's."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    x = jax.device_put(jax.random.normal(jax.random.key(0), (8, 3, 5)), NamedSharding(mesh, P("data")))
    w = jax.device_put(jax.random.normal(jax.random.key(2), (8, 3, 7)), NamedSharding(mesh, P("data")))

    def compiled_grads(module):
        params = module.init(jax.random.key(1), x[:1])
        grad = jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.tanh(module.apply(p, x)) * w), argnums=(0, 1)))
        return grad(params, x), grad.lower(params, x).compile().as_text()

    (ours, ours_hlo), (flax, flax_hlo) = compiled_grads(InputGradFirstDense(7)), compiled_grads(nn.Dense(7))
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(flax)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for collective in ("all-reduce", "all-gather", "collective-permute", "all-to-all"):
        assert ours_hlo.count(f" {collective}(") == flax_hlo.count(f" {collective}("), collective
