"""`python -m benchmarks[.claims|.report|.sampling|.gpu_check]` from a checkout: thin shims over
`aigc_jax.benchmarks` (installed, the same commands are `aigc-bench` and `python -m aigc_jax.benchmarks.X`)."""
