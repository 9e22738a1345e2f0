# SPDX-License-Identifier: MIT
"""What the domain decomposition needs of MPI, and the same for one process without MPI.

`world()` is mpi4py's COMM_WORLD when the process was started by mpirun with more than one
rank, else `Serial()`: one process, no MPI library loaded at all."""

import os

import numpy as np


class Serial:
    """One process: every collective is the identity."""

    rank = 0
    size = 1

    def allreduce(self, v, op="sum"):
        return v

    def allgather(self, v):
        return [v]

    def gather(self, v, root=0):
        return [v]

    def bcast(self, v, root=0):
        return v

    def alltoallv(self, send, dtype, rcounts=None):
        """send: {rank: 1-d numpy array of dtype}; returns {rank: array} (only to itself
        here)."""
        return {0: send[0]} if 0 in send and send[0].size else {}

    def barrier(self):
        pass


class Mpi:
    """mpi4py's COMM_WORLD behind the same small interface."""

    def __init__(self):
        from mpi4py import MPI

        self.MPI = MPI
        self.c = MPI.COMM_WORLD
        self.rank = self.c.Get_rank()
        self.size = self.c.Get_size()

    def allreduce(self, v, op="sum"):
        ops = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "or": self.MPI.LOR, "min": self.MPI.MIN}
        return self.c.allreduce(v, op=ops[op])

    def allgather(self, v):
        return self.c.allgather(v)

    def gather(self, v, root=0):
        return self.c.gather(v, root=root)

    def bcast(self, v, root=0):
        return self.c.bcast(v, root=root)

    def alltoallv(self, send, dtype, rcounts=None):
        """send: {rank: 1-d numpy array of dtype}; every rank gets {rank: array} of what each
        rank sent it (empty arrays omitted). Counts first (unless the caller knows them:
        rcounts, items from each rank), then the data in one Alltoallv (no pickling)."""
        dtype = np.dtype(dtype)
        counts = np.zeros(self.size, dtype=np.int64)
        for r, a in send.items():
            counts[r] = a.size
        if rcounts is None:
            rcounts = np.empty(self.size, dtype=np.int64)
            self.c.Alltoall(counts, rcounts)
        else:
            rcounts = np.asarray(rcounts, dtype=np.int64)
        sbuf = (
            np.concatenate(
                [
                    np.asarray(send.get(r, np.empty(0, dtype)), dtype=dtype).ravel()
                    for r in range(self.size)
                ]
            )
            if counts.sum()
            else np.empty(0, dtype)
        )
        rbuf = np.empty(int(rcounts.sum()), dtype=dtype)
        sdis = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rdis = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
        mpit = self.MPI._typedict[dtype.char]
        self.c.Alltoallv([sbuf, counts, sdis, mpit], [rbuf, rcounts, rdis, mpit])
        return {r: rbuf[rdis[r] : rdis[r] + rcounts[r]] for r in range(self.size) if rcounts[r]}

    def barrier(self):
        self.c.Barrier()


def under_mpirun():
    """True in a process started by mpirun (OpenMPI or MPICH sets these)."""
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


def world():
    if under_mpirun():
        c = Mpi()
        if c.size > 1:
            return c
    return Serial()
