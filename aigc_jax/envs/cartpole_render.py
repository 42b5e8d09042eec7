"""Host-side drawing of CartPole states with Pillow: single frames and a strip of an episode."""

import numpy as np
from PIL import Image, ImageDraw

from aigc_jax.envs.cartpole import DEFAULT, Params

WIDTH, HEIGHT = 240, 160


def frame(obs, params: Params = DEFAULT, label: str = "") -> np.ndarray:
    """One observation [x, x_dot, theta, theta_dot] -> an RGB uint8 image [HEIGHT, WIDTH, 3]."""
    x, _, theta, _ = (float(v) for v in obs)
    scale = WIDTH / (2 * params.x_limit * 1.1)  # pixels per metre; the track's ends are visible
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    track_y = int(HEIGHT * 0.75)
    left, right = WIDTH / 2 - params.x_limit * scale, WIDTH / 2 + params.x_limit * scale
    draw.line([(left, track_y), (right, track_y)], fill=(0, 0, 0), width=1)
    for end in (left, right):  # the termination bounds
        draw.line([(end, track_y - 6), (end, track_y + 6)], fill=(200, 0, 0), width=2)
    cart_x = WIDTH / 2 + x * scale
    cart_w, cart_h = 0.25 * scale * 2, 0.15 * scale * 2
    draw.rectangle([cart_x - cart_w / 2, track_y - cart_h / 2, cart_x + cart_w / 2, track_y + cart_h / 2],
                   fill=(60, 60, 60))
    pole_len = 2 * params.half_length * scale
    tip = (cart_x + pole_len * np.sin(theta), track_y - pole_len * np.cos(theta))
    draw.line([(cart_x, track_y), tip], fill=(202, 152, 101), width=max(2, int(0.05 * scale)))
    draw.ellipse([cart_x - 3, track_y - 3, cart_x + 3, track_y + 3], fill=(129, 132, 203))
    if label:
        draw.text((4, 4), label, fill=(0, 0, 0))
    return np.asarray(image)


def episode_strip(obs: np.ndarray, alive: np.ndarray, params: Params = DEFAULT, frames: int = 8) -> np.ndarray:
    """`frames` evenly spaced frames of one episode ([T, OBS] with an alive mask [T]) side by side,
    as an RGB image in [0, 1]; each frame is labelled with its step."""
    obs, alive = np.asarray(obs), np.asarray(alive)
    length = max(int(alive.sum()), 1)
    steps = np.unique(np.linspace(0, length - 1, frames).round().astype(int))
    pictures = [frame(obs[t], params, f"t={t}" + (" (end)" if t == length - 1 else "")) for t in steps]
    gap = np.full((HEIGHT, 4, 3), 255, np.uint8)
    pictures = [p for pic in pictures for p in (pic, gap)][:-1]
    return np.concatenate(pictures, axis=1).astype(np.float32) / 255.0
