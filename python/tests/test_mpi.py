# SPDX-License-Identifier: MIT
"""libarena.mpi under mpirun: 4 ranks as 2 nodes x 2 (ARENA_MPI_NODES=2).

Skipped when mpirun, mpi4py or libarena_mpi.so (make mpi) is missing."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _skip_reason():
    if shutil.which("mpirun") is None:
        return "mpirun not found (tools/install-deps mpi)"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return f"mpi4py not importable by {sys.executable}"
    try:
        import libarena.mpi
        libarena.mpi.library()
    except OSError as e:
        return f"libarena_mpi not built (make mpi): {e}"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_share_2_nodes_x_2_ranks(tmp_path):
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.update(OMPI_MCA_btl="self,vader", OMPI_MCA_btl_vader_single_copy_mechanism="none",
               ARENA_MPI_NODES="2")
    cmd = ["mpirun", "--oversubscribe", "-np", "4", "-x", "ARENA_MPI_NODES",
           "-x", "PYTHONPATH", sys.executable, os.path.join(HERE, "mpi_share_prog.py"),
           "2", str(tmp_path)]
    if "LIBARENA_MPI_LIBRARY" in env:
        cmd[5:5] = ["-x", "LIBARENA_MPI_LIBRARY"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    for r in range(4):
        assert f"rank {r} ok" in p.stdout, out
