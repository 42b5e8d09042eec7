"""Near-duplicate documents, found by shared 64-byte windows, so that held-out splits hold no copy
of training text.

A document's windows are its `size`-byte pieces starting every `size` bytes. Document A shares a
window with B when that piece occurs in B at any offset. Pieces are compared by a 64-bit
polynomial hash of every `size`-byte substring (numpy, by doubling: log2(size) vectorised passes),
so a 10 MB corpus is checked in seconds; two different 64-byte strings share a hash with
probability about 2^-64 per pair.
"""

import numpy as np

WINDOW = 64  # bytes
_BASE = np.uint64(1099511628211)  # an odd 64-bit multiplier (FNV's prime); arithmetic is mod 2^64


def substring_hashes(data: np.ndarray, size: int = WINDOW) -> np.ndarray:
    """uint64 [len(data) - size + 1]: the hash of data[i : i + size] for every offset i.

    h_1 = the bytes; h_2k[i] = h_k[i] * BASE^k + h_k[i + k]. `size` must be a power of two."""
    if size & (size - 1):
        raise ValueError(f"size={size}: expected a power of two")
    h = data.astype(np.uint64) + np.uint64(1)  # + 1: a zero byte still moves the hash
    power, k = _BASE, 1
    with np.errstate(over="ignore"):
        while k < size:
            h = h[:-k] * power + h[k:]
            power, k = power * power, 2 * k
    return h


def window_starts(length: int, size: int = WINDOW) -> np.ndarray:
    """Offsets of the windows of a `length`-byte document (a shorter tail is dropped)."""
    return np.arange(0, length - size + 1, size)


def shared_fraction(held_out: bytes, train: bytes, size: int = WINDOW) -> float:
    """The fraction of `held_out`'s windows that occur verbatim anywhere in `train`."""
    if len(held_out) < size:
        return 0.0
    pieces = substring_hashes(np.frombuffer(held_out, np.uint8), size)[window_starts(len(held_out), size)]
    anywhere = substring_hashes(np.frombuffer(train, np.uint8), size) if len(train) >= size else np.zeros(0, np.uint64)
    return float(np.isin(pieces, anywhere).mean())


def shared_windows(docs: list[bytes], size: int = WINDOW) -> np.ndarray:
    """int64 [n, n]: entry (a, b) counts the windows of docs[a] that occur somewhere in docs[b], a != b."""
    n = len(docs)
    lengths = np.array([len(d) for d in docs])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    stream = np.frombuffer(b"".join(docs), np.uint8)
    counts = np.zeros((n, n), np.int64)
    if len(stream) < size:
        return counts
    hashes = substring_hashes(stream, size)
    owner = np.repeat(np.arange(n), lengths)[: len(hashes)]
    inside = owner == np.repeat(np.arange(n), lengths)[size - 1:]  # the substring does not cross documents
    # Every (hash, document) pair once, sorted by hash.
    pairs = np.unique(np.stack([hashes[inside], owner[inside].astype(np.uint64)], 1), axis=0)
    # Each document's own windows, once per distinct piece and document.
    own = [np.unique(hashes[s + window_starts(length, size)]) for s, length in zip(starts, lengths)]
    piece = np.concatenate(own) if own else np.zeros(0, np.uint64)
    piece_doc = np.repeat(np.arange(n), [len(o) for o in own])
    lo = np.searchsorted(pairs[:, 0], piece, "left")
    hi = np.searchsorted(pairs[:, 0], piece, "right")
    # Expand each piece to the documents holding it.
    matches = hi - lo
    rows = np.repeat(np.arange(len(piece)), matches)
    offsets = np.arange(matches.sum()) - np.repeat(np.cumsum(matches) - matches, matches)
    holder = pairs[lo[rows] + offsets, 1].astype(np.int64)
    a = piece_doc[rows]
    keep = a != holder
    np.add.at(counts, (a[keep], holder[keep]), 1)
    return counts


def groups(docs: dict[str, bytes], min_shared: float = 0.0, size: int = WINDOW) -> list[list[str]]:
    """Document names joined (transitively) when more than `min_shared` of one's windows occur in
    the other (0.0: any shared window joins them); each group sorted, groups sorted."""
    names = sorted(docs)
    counts = shared_windows([docs[name] for name in names], size)
    totals = np.array([max(len(window_starts(len(docs[name]), size)), 1) for name in names])
    linked = counts > min_shared * totals[:, None]  # min_shared 0: any shared window
    parent = list(range(len(names)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(*np.nonzero(linked)):
        parent[root(a)] = root(b)
    members: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        members.setdefault(root(i), []).append(name)
    return sorted(members.values())


def assign_splits(groups: list[list[str]], sizes: dict[str, int], held_out_fraction: float,
                  max_group_fraction: float, seed: int) -> dict[str, list[str]]:
    """{"train", "validation", "test"} -> document names, whole groups only. Groups are taken in
    the order of `numpy.random.default_rng(seed)`: into test until it holds `held_out_fraction` of
    the bytes, then into validation likewise; the rest, and any group over `max_group_fraction` of
    the bytes, into train."""
    total = sum(sizes.values())
    held = {"test": [], "validation": []}
    filled = {"test": 0, "validation": 0}
    for i in np.random.default_rng(seed).permutation(len(groups)):
        group_bytes = sum(sizes[name] for name in groups[i])
        split = next((s for s in ("test", "validation") if filled[s] < held_out_fraction * total), None)
        if split is None or group_bytes > max_group_fraction * total:
            continue
        held[split] += groups[i]
        filled[split] += group_bytes
    train = set(sizes) - set(held["test"]) - set(held["validation"])
    return {"train": sorted(train), "validation": sorted(held["validation"]), "test": sorted(held["test"])}
