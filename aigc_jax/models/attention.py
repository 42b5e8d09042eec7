"""The attention function of the Transformer families: `jax.nn.dot_product_attention`.

Passed as `attention_fn` to Flax's `MultiHeadDotProductAttention`, so parameters, projections and
the KV cache stay Flax's. On a GPU, a causal or unmasked attention in bfloat16/float16 runs cuDNN's
fused flash-attention kernel (`implementation="cudnn"`); everything else (CPU, float32, explicit
masks such as padding or the decode cache's, a head size cuDNN rejects) runs XLA's composition of
the same math. jax.nn's `implementation=None` means XLA today, so the choice is made here, when
the step is traced: cuDNN's own shape and dtype checks decide, and any shape they refuse falls
back to XLA instead of failing the run.
"""

import jax


def dot_product_attention(query, key, value, mask=None, *, is_causal: bool = False):
    """query [B, T, heads, head_dim], key/value [B, S, heads, head_dim] -> [B, T, heads, head_dim].

    `mask` (0/1 or boolean, broadcastable to [B, heads, T, S]) keeps the True positions; `is_causal`
    applies the causal mask without materialising it (a GPT's training step passes it instead of
    a mask). Scores are scaled by 1/sqrt(head_dim), as in Flax's default.
    """
    if mask is not None:
        mask = mask.astype(bool)  # Flax's masks are 0/1 floats
    elif jax.default_backend() == "gpu":
        try:
            return jax.nn.dot_product_attention(query, key, value, is_causal=is_causal, implementation="cudnn")
        except (NotImplementedError, ValueError, RuntimeError):
            pass  # a dtype, head size or cuDNN version the fused kernel does not take
    return jax.nn.dot_product_attention(query, key, value, mask=mask, is_causal=is_causal, implementation="xla")
