"""A writer killed at random moments never leaves a broken index (issue 5: atomic saves)."""

import multiprocessing
import os
import random
import signal
import time

import numpy as np

from hashsearch.encoding import Encoded
from hashsearch.index import HashIndex


def make(n, seed):
    rng = np.random.default_rng(seed)
    items = Encoded(
        rng.integers(0, 256, (n, 8), dtype=np.uint8),
        rng.standard_normal((n, 16)).astype(np.float32),
        rng.integers(0, 4, n),
    )
    return HashIndex.build(items, [f"{seed}-{i}" for i in range(n)], {"seed": seed})


def keep_saving(directory, started):
    """Save two different indexes in turn, forever (until killed)."""
    states = [make(3000, 1), make(2000, 2)]
    started.set()
    for turn in range(10**9):
        states[turn % 2].save(directory)


def test_killing_the_writer_at_random_moments_leaves_the_old_or_the_new_index(tmp_path):
    directory = tmp_path / "ix"
    make(1000, 0).save(directory)
    valid = {0: 1000, 1: 3000, 2: 2000}
    context = multiprocessing.get_context("fork")  # the child inherits the loaded modules
    rng = random.Random(0)
    seen = set()
    for _ in range(25):
        started = context.Event()
        writer = context.Process(target=keep_saving, args=(directory, started), daemon=True)
        writer.start()
        assert started.wait(30)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        loaded = HashIndex.load(directory)  # never raises: the commit point is one rename
        seed = loaded.info["seed"]
        assert len(loaded) == valid[seed] == len(loaded.ids) == len(loaded.labels)
        assert loaded.ids[0] == f"{seed}-0"
        seen.add(seed)
    assert seen & {1, 2}  # the writer did get saves through between kills
    make(10, 3).save(directory)  # a later save clears what killed writers left behind
    make(10, 4).save(directory)
    left = sorted(p.name for p in directory.iterdir())  # the live and the previous version
    assert left[:2] == [".lock", "CURRENT"] and len(left) == 4
    assert all(name.startswith("v-") for name in left[2:])
