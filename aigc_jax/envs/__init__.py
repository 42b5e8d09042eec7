"""JAX-native environments: pure reset/step functions over pytrees of arrays."""
