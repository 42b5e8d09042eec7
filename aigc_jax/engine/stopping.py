"""Stop requests: SIGTERM or Ctrl-C become a request that every process agrees on before acting.

The handler only records the signal, so whatever runs (data preparation, compilation, a restore,
a step, a save) finishes undisturbed. The loop asks `StopAgreement` once per step; on several
processes the answer is the maximum of every process's request (a tiny all-reduce over all
devices, read one step late so it never stalls dispatch), so every host stops after the same step
and they save that step together instead of one waiting for the others in a collective forever.
"""

import signal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """Raised by work that prepares a run (e.g. training the judge a task's data needs) when a stop
    was requested meanwhile: the run then ends before its first step, with nothing written."""


class StopSignal:
    """Turns SIGTERM/SIGINT into a recorded request (`code`: the signal number, 0 for none).

    Nested inside another (a run started while preparing a run, like the judge), it shares the
    outer one's record, so one Ctrl-C stops both."""

    def __init__(self):
        self._code = 0
        self._outer = None
        self._old = {}

    @property
    def code(self) -> int:
        return self._outer.code if self._outer is not None else self._code

    def __enter__(self):
        outer = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        if isinstance(outer, StopSignal):
            self._outer = outer
            return self
        for sig in SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self._code = int(signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def signal_name(code: int) -> str | None:
    return signal.Signals(code).name if code else None


class StopAgreement:
    """Whether to stop, agreed by every process: `now()` blocks (before the loop), `after_step()`
    answers with the request as it stood one step earlier on several processes, at once on one."""

    def __init__(self, requests: StopSignal):
        self.requests = requests
        self.processes = jax.process_count()
        self._pending = None
        if self.processes > 1:
            devices = jax.devices()
            self._sharding = NamedSharding(Mesh(np.asarray(devices), ("stop",)), P("stop"))
            self._local = len(jax.local_devices())
            self._reduce = jax.jit(jnp.max, out_shardings=NamedSharding(self._sharding.mesh, P()))

    def _dispatch(self) -> jax.Array:
        local = np.full((self._local,), self.requests.code, np.int32)
        return self._reduce(jax.make_array_from_process_local_data(self._sharding, local))

    def now(self) -> str | None:
        if self.processes == 1:
            return signal_name(self.requests.code)
        return signal_name(int(self._dispatch().addressable_data(0)))

    def after_step(self) -> str | None:
        if self.processes == 1:
            return signal_name(self.requests.code)
        previous, self._pending = self._pending, self._dispatch()
        return None if previous is None else signal_name(int(previous.addressable_data(0)))
