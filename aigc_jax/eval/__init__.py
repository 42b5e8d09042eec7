"""Quality metrics: accuracy, ELBO, Fréchet distances."""
