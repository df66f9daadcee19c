"""Several processes, one run: JAX's own multi-host runtime (`jax.distributed`).

    zoo-jax train --model resnet50 --parallel sharded \\
        --coordinator 10.0.0.1:1234 --num-processes 4 --process-id 0     # on each host

`initialize` joins the run before anything touches a device. Where the three values come
from, first found first: the options; `--coordinator auto`, which leaves them to JAX's own
detection (`jax.distributed.initialize()` without arguments: a multi-host Cloud TPU slice,
Slurm, Open MPI, Kubernetes); JAX's variables `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`
and `JAX_PROCESS_ID`; a Slurm step or an `mpirun` of more than one process (their
variables, read by JAX's detection). Otherwise the run is one process, as always.

In a multi-process run every process loads the same data and walks the same global batches
(the data order comes from the seed); each feeds its own contiguous slice of every global
batch to its devices (`steps.compile_steps`, `parallel="sharded"`: the mesh spans every
process's devices), so the update is the one a single process with all the devices makes.
Evaluation sums over every process's slice. Process 0 alone writes the run directory's
files (metrics, summary, plots, the lock) and prints; every process takes part in orbax's
checkpoint saves and restores, which orbax coordinates (the primary host writes).
On the CPU the processes talk through gloo (`jax_cpu_collectives_implementation`).
"""

from __future__ import annotations

import os

import jax

from zoo_jax.errors import ZooError

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# a cluster manager's variables that say how many processes it started
CLUSTER_SIZES = ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")  # srun's step, mpirun


def _cluster_detected() -> bool:
    sizes = [os.environ.get(name, "1") for name in CLUSTER_SIZES]
    return any(s.isdigit() and int(s) > 1 for s in sizes)


def _parse(coordinator, num_processes, process_id) -> tuple[str, int, int]:
    if coordinator is None or num_processes is None or process_id is None:
        missing = [name for name, value in (("--coordinator", coordinator),
                   ("--num-processes", num_processes), ("--process-id", process_id))
                   if value is None]  # fmt: skip
        raise ZooError(f"a multi-process run needs all three of --coordinator, --num-processes "
                       f"and --process-id (or {', '.join(ENV)}); missing: {', '.join(missing)}")  # fmt: skip
    host, _, port = str(coordinator).rpartition(":")
    if not host or not port.isdigit():
        raise ZooError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    try:
        num_processes, process_id = int(num_processes), int(process_id)
    except ValueError:
        raise ZooError("--num-processes and --process-id must be integers") from None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ZooError(
            f"--process-id must be in [0, {num_processes}) and --num-processes >= 1, got "
            f"process {process_id} of {num_processes}"
        )
    return str(coordinator), num_processes, process_id


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> int:
    """Join a multi-process run if one is asked for (see the module's docstring); returns
    the number of processes (1: nothing to join)."""
    if coordinator == "auto":  # JAX finds the cluster (a TPU pod slice, Slurm, ...) itself
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()
        return jax.process_count()
    given = (coordinator, num_processes, process_id)
    if all(value is None for value in given) and any(os.environ.get(name) for name in ENV):
        given = tuple(os.environ.get(name) for name in ENV)
    if any(value is not None for value in given):
        coordinator, num_processes, process_id = _parse(*given)
        if num_processes == 1:
            return 1
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes, process_id)
    elif _cluster_detected():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run's files and prints: process 0 (or the only one)."""
    return jax.process_index() == 0
