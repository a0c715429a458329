"""A ring of shared-memory slots through which a stream's DataLoader workers hand uint8 batches to
the training process.

The DataLoader's own hand-over pickles a batch: NumPy arrays cross its pipe (a copy into the
pickle, two through the kernel, one out), tensors get a fresh shared-memory segment per batch,
which both sides fault in page by page. The ring is allocated once and faulted in once; a worker
decodes each record C-ordered straight into the slot of its batch (`SlotWriter`), and the
training process transforms straight from the slot. Only the records' places (offset, dtype,
shape) travel through the pipe.

Batch j (the j-th the sampler hands out) goes to slot j mod slots. A DataLoader has at most
prefetch x workers items in flight, and the training process holds one, so `for_loader`'s ring
of (prefetch x workers + 2) x batches per item slots is not reused before the training process
is done with a batch. A "taken" flag per slot makes sure of it: a worker that finds its slot
still taken, or a batch larger than a slot, sends the batch through the pipe instead (`writer`,
`SlotWriter.seal`); so does a stream without room in /dev/shm.
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


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN


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
        return sum(_aligned(array.nbytes) for array in arrays)

    @classmethod
    def for_loader(cls, workers: int, prefetch: int, per_item: int, batch_bytes: int) -> "SlotRing | None":
        """A ring for a DataLoader's items of `per_item` batches of about `batch_bytes`, or None
        where /dev/shm has not room for it twice over (batches then go through the pipe)."""
        slots = (prefetch * workers + 2) * per_item
        slot_bytes = _aligned(batch_bytes)     # each slot starts on a cache line
        if _shm_free() < 2 * slots * slot_bytes:
            return None
        return cls(slots, slot_bytes)

    def _flags(self) -> np.ndarray:
        return self.memory.numpy()[self.slots * self.slot_bytes:]

    def writer(self, sequence: int) -> "SlotWriter | None":
        """Batch `sequence`'s slot to decode its records into, or None while the training process
        still holds it (send the batch through the pipe)."""
        slot = sequence % self.slots
        return None if self._flags()[slot] else SlotWriter(self, slot)

    def take(self, places: Sequence[Place]) -> list[np.ndarray]:
        """Views of the arrays at `places`; valid until the slot is released."""
        memory = self.memory.numpy()
        return [_view(memory, place) for place in places]

    def release(self, slot: int) -> None:
        """The training process is done with `slot`: workers may write it again."""
        self._flags()[slot] = 0


class SlotWriter:
    """One slot being filled by a worker: arrays handed out one after another for a decoder to
    write into (`allocate`), then `seal`ed for the training process."""

    def __init__(self, ring: SlotRing, slot: int) -> None:
        self.ring, self.slot = ring, slot
        self.memory = ring.memory.numpy()
        self.start = self.offset = slot * ring.slot_bytes
        self.end = self.start + ring.slot_bytes
        self._base = self.memory.__array_interface__["data"][0]

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A C-ordered array in the slot, or a new one where the slot has no room left."""
        place = (self.offset, np.dtype(dtype).str, tuple(shape))
        size = _aligned(math.prod(shape) * np.dtype(dtype).itemsize)
        if self.offset + size > self.end:
            return np.empty(shape, dtype)
        self.offset += size
        return _view(self.memory, place)

    def seal(self, arrays: Sequence[np.ndarray]) -> tuple[int, list[Place]] | None:
        """(the slot, the places of `arrays`), marked taken: arrays a decoder wrote elsewhere are
        copied in. None when they do not all fit (send them through the pipe)."""
        places = []
        for array in arrays:
            place = self._place_of(array)
            if place is None:
                copy = self.allocate(array.shape, array.dtype)
                place = self._place_of(copy)
                if place is None:
                    return None
                np.copyto(copy, array)
            places.append(place)
        self.ring._flags()[self.slot] = 1
        return self.slot, places

    def _place_of(self, array: np.ndarray) -> Place | None:
        """Where `array` lies in this slot's written part, if it is a C-ordered array there."""
        offset = array.__array_interface__["data"][0] - self._base
        if not (array.flags.c_contiguous and self.start <= offset < self.offset):
            return None
        return offset, array.dtype.str, array.shape
