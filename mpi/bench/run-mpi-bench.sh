#!/bin/sh
# make mpi-bench: arena-mpi-bench over 4 ranks on this machine
# (MPI_BENCH_ARGS are passed on; MPI_BENCH_NP changes the rank count).
set -u
B=${B:-build}
if ! command -v mpirun >/dev/null 2>&1; then
	echo "arena-mpi-bench skipped: mpirun not found (tools/install-deps mpi)"
	exit 0
fi
if [ "$(id -u)" = 0 ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
exec mpirun --oversubscribe -np "${MPI_BENCH_NP:-4}" "$B/tools/arena-mpi-bench" "$@"
