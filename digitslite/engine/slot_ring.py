"""A ring of shared-memory slots through which a stream's DataLoader workers hand uint8 batches to
the training process.

The DataLoader's own hand-over pickles a batch: NumPy arrays cross its pipe (a copy into the
pickle, two through the kernel, one out), tensors get a fresh shared-memory segment per batch,
which both sides fault in page by page. The ring is allocated once and faulted in once; a worker
copies each record C-ordered into the slot of its batch, and the training process transforms
straight from the slot. Only the records' places (offset, dtype, shape) travel through the pipe.

Batch j (the j-th the sampler hands out) goes to slot j mod slots. A DataLoader has at most
prefetch x workers items in flight, and the training process holds one, so `for_loader`'s ring
of (prefetch x workers + 2) x batches per item slots is not reused before the training process
is done with a batch. A "taken" flag per slot makes sure of it: a worker that finds its slot
still taken, or a batch larger than a slot, sends the batch through the pipe instead (`put`);
so does a stream without room in /dev/shm.
"""
import math
import shutil
from collections.abc import Sequence

import numpy as np
import torch

_ALIGN = 64                 # bytes; each array starts on a cache line
_SHM = "/dev/shm"           # where shm_open makes the ring's (at once unlinked) file

# An array's place in a slot: (offset in the ring, dtype, shape); it is stored C-ordered.
Place = tuple[int, str, tuple[int, ...]]


def _shm_free() -> int:
    try:
        return shutil.disk_usage(_SHM).free
    except OSError:
        return 0


def _room(array: np.ndarray) -> int:
    return -(-array.nbytes // _ALIGN) * _ALIGN


def _view(memory: np.ndarray, place: Place) -> np.ndarray:
    """The C-ordered array at `place` in the ring's bytes."""
    offset, dtype, shape = place
    return memory[offset:offset + math.prod(shape) * np.dtype(dtype).itemsize].view(dtype).reshape(shape)


class SlotRing:
    """`slots` slots of `slot_bytes` bytes in one shared-memory block, and a taken flag per slot.

    Made before the workers start; they inherit it (fork) or receive its file descriptor."""

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots, self.slot_bytes = slots, slot_bytes
        # file descriptor sharing whatever torch's strategy: the file is unlinked at once, so
        # nothing stays in /dev/shm when a process dies
        storage = torch.UntypedStorage._new_using_fd_cpu(slots * (slot_bytes + 1))
        self.memory = torch.empty(0, dtype=torch.uint8).set_(storage)

    @staticmethod
    def room(arrays: Sequence[np.ndarray]) -> int:
        """The bytes `arrays` take in a slot."""
        return sum(_room(array) for array in arrays)

    @classmethod
    def for_loader(cls, workers: int, prefetch: int, per_item: int, batch_bytes: int) -> "SlotRing | None":
        """A ring for a DataLoader's items of `per_item` batches of about `batch_bytes`, or None
        where /dev/shm has not room for it twice over (batches then go through the pipe)."""
        slots = (prefetch * workers + 2) * per_item
        slot_bytes = -(-batch_bytes // _ALIGN) * _ALIGN     # each slot starts on a cache line
        if _shm_free() < 2 * slots * slot_bytes:
            return None
        return cls(slots, slot_bytes)

    def _flags(self) -> np.ndarray:
        return self.memory.numpy()[self.slots * self.slot_bytes:]

    def put(self, sequence: int, arrays: Sequence[np.ndarray]) -> tuple[int, list[Place]] | None:
        """Copy `arrays` into batch `sequence`'s slot and mark it taken: (slot, their places); None
        when the slot is still taken or they do not fit (send them through the pipe)."""
        slot = sequence % self.slots
        flags, places, offset = self._flags(), [], slot * self.slot_bytes
        if flags[slot]:
            return None
        for array in arrays:
            places.append((offset, array.dtype.str, array.shape))
            offset += _room(array)
        if offset > (slot + 1) * self.slot_bytes:
            return None
        memory = self.memory.numpy()
        for array, place in zip(arrays, places, strict=True):
            np.copyto(_view(memory, place), array)
        flags[slot] = 1
        return slot, places

    def take(self, places: Sequence[Place]) -> list[np.ndarray]:
        """Views of the arrays at `places`; valid until the slot is released."""
        memory = self.memory.numpy()
        return [_view(memory, place) for place in places]

    def release(self, slot: int) -> None:
        """The training process is done with `slot`: workers may write it again."""
        self._flags()[slot] = 0
