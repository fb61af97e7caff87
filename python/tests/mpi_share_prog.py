# SPDX-License-Identifier: MIT
"""Run by test_mpi.py under mpirun -np 4 with ARENA_MPI_NODES=2: every rank
prints "rank R ok" when libarena.mpi.share behaved as it should."""
import os
import sys

from mpi4py import MPI

import libarena
import libarena.mpi

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
nodes = int(sys.argv[1])
tmp = sys.argv[2]
N = 5000


def items():
    return [{"i": i, "s": "test_string", "l": [1, 3, 4]} for i in range(N)]


def one_copy_per_node(a):
    """Ranks of a node hold the same memfd; nodes, different ones."""
    ino = os.fstat(a.fileno()).st_ino
    inos = comm.allgather(ino)
    assert len(set(inos)) == nodes, inos
    per = comm.Get_size() // nodes
    for r in range(comm.Get_size()):  # contiguous blocks of ranks per node
        assert (inos[r] == ino) == (r // per == rank // per), (r, inos)


# Built by a callable in one rank per node (kind pickle travels with the fd).
a = libarena.mpi.share(comm, build=items, kind="pickle", timeout=60)
assert len(a) == N and a.kind == "pickle"
assert a[N - 1] == {"i": N - 1, "s": "test_string", "l": [1, 3, 4]}
one_copy_per_node(a)

# From an image file.
path = os.path.join(tmp, "py-mpi.arena")
if rank == 0:
    a.save(path)
comm.Barrier()
b = libarena.mpi.share(comm, path=path, timeout=60)
assert len(b) == N and b[7]["i"] == 7
one_copy_per_node(b)
a.close()
b.close()

# A truncated image: every rank raises CorruptArenaError.
comm.Barrier()
if rank == 0:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
comm.Barrier()
try:
    libarena.mpi.share(comm, path=path, timeout=60)
    raise AssertionError("a truncated image was accepted")
except libarena.CorruptArenaError:
    pass

# A build that raises: the loader re-raises it, the others get ECANCELED.
def bad():
    raise KeyError("no items here")

try:
    libarena.mpi.share(comm, build=bad, timeout=60)
    raise AssertionError("a failed build was accepted")
except KeyError:
    assert rank % (comm.Get_size() // nodes) == 0
except OSError as e:
    assert e.errno == 125 and rank % (comm.Get_size() // nodes) != 0, e  # ECANCELED

comm.Barrier()
print(f"rank {rank} ok", flush=True)
