"""Host-side figures: the learning curve (return vs environment steps, one line per seed)."""

import numpy as np


def learning_curve(env_steps: np.ndarray, returns: np.ndarray, title: str, solved: float | None = None) -> np.ndarray:
    """[S, U] env steps and returns after each of U updates of S agents -> an RGB image in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env_steps, returns = np.asarray(env_steps), np.asarray(returns)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for s in range(returns.shape[0]):
            ax.plot(env_steps[s], returns[s], lw=1.0, alpha=0.8 if returns.shape[0] == 1 else 0.5,
                    label=f"seed {s}" if returns.shape[0] <= 8 else None)
        if returns.shape[0] > 1:
            ax.plot(env_steps[0], returns.mean(0), color="black", lw=2.0, label="mean")
        if solved is not None:
            ax.axhline(solved, color="gray", ls="--", lw=1.0, label=f"solved ({solved:g})")
        ax.set_xlabel("environment steps (per agent)")
        ax.set_ylabel("episode return (training episodes)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    finally:
        plt.close(fig)
    return image.astype(np.float32) / 255.0
