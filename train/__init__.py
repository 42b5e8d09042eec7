"""`python -m train FAMILY` from a checkout: a thin shim over `aigc_jax.cli` (installed, the same
command is `aigc-train FAMILY`)."""
