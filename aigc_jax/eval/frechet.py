"""Fréchet distance between two Gaussians fitted to feature sets.

The statistics are accumulated as sums (of features and of their outer products) inside compiled
eval steps, so they add up across batches and devices; this module turns them into a distance.
"""

import numpy as np
import scipy.linalg


def moments(mean: np.ndarray, mean_outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, covariance) from E[x] and E[x x^T]."""
    mean = np.asarray(mean, np.float64)
    return mean, np.asarray(mean_outer, np.float64) - np.outer(mean, mean)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))."""
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():  # near-singular: nudge both diagonals, as FID does
        eps = 1e-6 * np.eye(len(mu1))
        covmean = scipy.linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def frechet_from_sums(means: dict, a: str, b: str) -> float:
    """FD between feature sets `a` and `b`, given per-example means of `{a}_sum`, `{a}_outer`, ..."""
    return frechet_distance(*moments(means[f"{a}_sum"], means[f"{a}_outer"]),
                            *moments(means[f"{b}_sum"], means[f"{b}_outer"]))
