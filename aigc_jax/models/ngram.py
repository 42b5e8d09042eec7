"""Count-based byte n-grams: dense count tables, scatter-add counting, interpolated Kneser-Ney.

Pure JAX functions; there is nothing to learn by gradient. Table k (k = 1..order) has shape
[V**(k-1), V], int32: row = the context id of the previous k-1 bytes (the oldest byte is the most
significant base-V digit), column = the next byte. Dense tables keep every step a fixed-shape
array program (no hashing, no host work) and make continuation counts a reshape plus a count of
nonzeros; their size (V**k values) is why the order stops at 3.

Position i of `inputs` [B, T] predicts the byte after inputs[:, i]; its history is inputs[:, :i+1],
so order k is usable there only when i >= k - 2. Counting and scoring both obey that rule, so a
window's first bytes use the lower orders in both.
"""

import jax
import jax.numpy as jnp

VOCAB = 256  # bytes
MAX_ORDER = 3  # order 4 would be a 16 GiB table


def table_shapes(order: int) -> tuple[tuple[int, int], ...]:
    return tuple((VOCAB ** (k - 1), VOCAB) for k in range(1, order + 1))


def table_bytes(order: int) -> int:
    """Bytes of int32 count tables of orders 1..order (what the state holds)."""
    return sum(4 * rows * cols for rows, cols in table_shapes(order))


def zero_tables(order: int) -> tuple[jax.Array, ...]:
    return tuple(jnp.zeros(shape, jnp.int32) for shape in table_shapes(order))


def _shifted(inputs: jax.Array, j: int) -> jax.Array:
    """inputs[:, i - j] at position i (0 where i < j): the byte j places back."""
    if j == 0:
        return inputs
    return jnp.pad(inputs, ((0, 0), (j, 0)))[:, :inputs.shape[1]]


def context_ids(inputs: jax.Array, order: int) -> tuple[jax.Array, ...]:
    """Per order k = 1..order, int32 [B, T]: the row of table k for the history ending at each position.

    Order k's id adds the byte k-2 places back as the most significant digit of order k-1's id.
    Where the history is shorter than k-1 bytes the id is meaningless and must not be used.
    """
    inputs = inputs.astype(jnp.int32)
    ids = [jnp.zeros_like(inputs)]
    for k in range(1, order):
        ids.append(ids[-1] + _shifted(inputs, k - 1) * VOCAB ** (k - 1))
    return tuple(ids)


def count(tables: tuple[jax.Array, ...], tokens: jax.Array) -> tuple[jax.Array, ...]:
    """`tables` plus every (history, next byte) pair of the windows `tokens` [B, L], of every order.

    Targets are tokens[:, 1:] (what the model is scored on; windows overlap by one byte, so each
    byte of the stream is counted once). One scatter-add per table; int32 sums are exact in any
    order, so every device and parallel mode gets the same counts.
    """
    order = len(tables)
    inputs, targets = tokens[:, :-1], tokens[:, 1:].astype(jnp.int32)
    position = jnp.arange(inputs.shape[1])[None, :]
    out = []
    for k, (table, ids) in enumerate(zip(tables, context_ids(inputs, order)), start=1):
        # A position whose k-1 history starts before the window goes out of range and is dropped.
        # Sorted: XLA cannot split a sort along its axis, so under sharded jit it all-gathers these
        # few thousand ids instead of scattering per device and all-reducing the whole table.
        flat = jnp.sort(jnp.where(position >= k - 2, ids * VOCAB + targets, table.size).reshape(-1))
        out.append(table.reshape(-1).at[flat].add(1, mode="drop", indices_are_sorted=True).reshape(table.shape))
    return tuple(out)


def continuation_tables(tables: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """Per order k = 1..order-1, int32 [V**(k-1), V]: N1+(. h w), the distinct bytes seen before (h, w).

    Exact from the dense order-(k+1) table: its rows are (v, h) with v the most significant digit,
    so [V**k, V] -> [V, V**(k-1), V] and count nonzeros over v.
    """
    return tuple((t.reshape(VOCAB, t.shape[0] // VOCAB, VOCAB) > 0).sum(0, dtype=jnp.int32) for t in tables[1:])


def kn_level(rows: jax.Array, lower: jax.Array, discount: float) -> jax.Array:
    """One interpolated Kneser-Ney level: (max(c - D, 0) + D * N1+(h .) * P_lower) / c(h); P_lower when c(h) = 0.

    `rows` [..., V] are the (raw or continuation) counts of each position's context, `lower` the
    next-lower order's distribution. Sums to 1 because every nonzero count is >= 1 > D.
    """
    rows = rows.astype(jnp.float32)
    total = rows.sum(-1, keepdims=True)
    types = (rows > 0).sum(-1, keepdims=True).astype(jnp.float32)
    mixed = (jnp.maximum(rows - discount, 0.0) + discount * types * lower) / jnp.maximum(total, 1.0)
    return jnp.where(total > 0, mixed, lower)


def next_byte_probs(tables, cont, ctx, top, discount: float, lowest: int | None = None) -> jax.Array:
    """P(next byte) [..., V] for contexts `ctx` (one id array [...] per order).

    `top` (an int, or an int array [...]) is the highest order each position's history allows;
    that order uses raw counts, the orders below it continuation counts, the base is uniform.
    With an array `top`, `lowest` is its smallest possible value (the levels computed).
    """
    order = len(tables)
    highest = top if isinstance(top, int) else order
    lowest = highest if isinstance(top, int) else (lowest or 1)
    chain = [jnp.full((*ctx[0].shape, VOCAB), 1.0 / VOCAB, jnp.float32)]  # P_0: uniform
    for k in range(1, highest):
        chain.append(kn_level(cont[k - 1][ctx[k - 1]], chain[-1], discount))
    out = None
    for k in range(lowest, highest + 1):
        p = kn_level(tables[k - 1][ctx[k - 1]], chain[k - 1], discount)
        out = p if out is None else jnp.where((top == k)[..., None], p, out)
    return out


def log_probs(tables: tuple[jax.Array, ...], inputs: jax.Array, discount: float) -> jax.Array:
    """log P(byte after inputs[:, i]) [B, T, V]; continuation tables are computed once for the call."""
    order = len(tables)
    cont = continuation_tables(tables)
    ctx = context_ids(inputs, order)
    short = min(max(order - 2, 0), inputs.shape[1])  # positions whose history is shorter than order - 1
    parts = [next_byte_probs(tables, cont, [c[:, i:i + 1] for c in ctx], i + 2, discount) for i in range(short)]
    parts.append(next_byte_probs(tables, cont, [c[:, short:] for c in ctx], order, discount))
    return jnp.log(jnp.concatenate(parts, axis=1))


def decoder(tables: tuple[jax.Array, ...], batch: int, discount: float):
    """(step_fn, state) for `aigc_jax.decoding`: the state is the last bytes per row (newest last)
    and how many of them are real, so the first steps use the lower orders as `log_probs` does."""
    order = len(tables)
    cont = continuation_tables(tables)
    width = max(order - 1, 1)

    def step_fn(state, token, t):
        history, valid = state
        history = jnp.concatenate([history[:, 1:], token[:, None].astype(jnp.int32)], axis=1)
        valid = jnp.minimum(valid + 1, width)
        ctx = [c[:, -1] for c in context_ids(history, order)]
        probs = next_byte_probs(tables, cont, ctx, jnp.minimum(valid + 1, order), discount, lowest=min(2, order))
        return jnp.log(probs), (history, valid)

    return step_fn, (jnp.zeros((batch, width), jnp.int32), jnp.zeros((batch,), jnp.int32))


def flops(batch: int, positions: int, order: int) -> float:
    """Rough arithmetic of one counting step (prequential loss, then counting): the continuation
    tables (a compare and an add per entry), ~10 operations per vocabulary entry per Kneser-Ney
    level per position, a log per entry, and one add per counted pair. No matmuls: MFU means little."""
    tables = sum(2.0 * VOCAB ** k for k in range(2, order + 1))
    return tables + batch * positions * (VOCAB * (10.0 * order + 1) + order)
