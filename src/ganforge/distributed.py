"""Training on several processes: PyTorch's DistributedDataParallel, set up from torchrun's environment.

``torchrun --nproc-per-node N -m ganforge train ...`` starts N copies of the
run. Each reads its place from the environment torchrun sets (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT), trains on its own slice of every
global batch, and DDP averages the gradients, so N processes take the same
steps as one process with the whole batch. Rank 0 alone writes the run
directory; the loop's few decisions that depend on a clock or a signal
(checkpoint now? stop now?) are agreed over a small CPU process group, so
every rank takes them at the same step.
"""

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ganforge.errors import UsageError

log = logging.getLogger("ganforge")

TIMEOUT = datetime.timedelta(minutes=30)  # how long a rank waits for the others (rank 0 may be evaluating)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank ``rank`` of ``world_size`` (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0  # the rank on this machine: picks the GPU
    world_size: int = 1
    owns_process_group: bool = False  # set up here, so torn down here
    control: object = None  # gloo group for the loop's CPU-side agreements

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        """The one process that logs and writes samples, checkpoints and metrics."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU (cuda:LOCAL_RANK) when the run uses CUDA."""
        if device.type != "cuda" or not self.enabled:
            return device
        device = torch.device("cuda", self.local_rank)
        torch.cuda.set_device(device)
        return device

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            dist.barrier(group=self.control)

    def any(self, flags: list[bool]) -> list[bool]:
        """Each flag, true if it is true on any rank (a tiny all-reduce on the CPU: no device sync)."""
        if not self.enabled:
            return flags
        values = torch.tensor(flags, dtype=torch.int32)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.control)
        return [bool(v) for v in values]

    def all_true(self, flags: torch.Tensor) -> list[bool]:
        """Whether each of a (device) bool tensor's flags is true on every rank; waits for the device."""
        flags = flags.to(torch.int32)
        if self.enabled:
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        return [bool(flag) for flag in flags.tolist()]

    def from_main(self, value):
        """Rank 0's ``value`` (any picklable object), on every rank."""
        if not self.enabled:
            return value
        values = [value]
        dist.broadcast_object_list(values, src=0, group=self.control)
        return values[0]

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (the batch size divides evenly)."""
        size = tensor.shape[0] // self.world_size
        return tensor[self.rank * size : (self.rank + 1) * size]


def setup(device_name: str) -> Distributed:
    """This process's ``Distributed``: from torchrun's environment when WORLD_SIZE > 1, else one process.

    Starts the default process group (NCCL for CUDA runs, gloo otherwise)
    unless the caller has already started one.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
        raise UsageError("WORLD_SIZE is set but RANK or MASTER_ADDR is not: start distributed runs with torchrun")
    owns = not dist.is_initialized()
    if owns:
        uses_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if uses_cuda else "gloo", timeout=TIMEOUT)
    rank = dist.get_rank()
    control = dist.new_group(backend="gloo", timeout=TIMEOUT) if dist.get_backend() != "gloo" else None
    if rank != 0:
        logging.getLogger("ganforge").setLevel(logging.ERROR)  # rank 0 speaks for the run
    return Distributed(
        rank=rank,
        local_rank=int(os.environ.get("LOCAL_RANK", rank)),
        world_size=dist.get_world_size(),
        owns_process_group=owns,
        control=control,
    )


def teardown(context: Distributed) -> None:
    """End the process group if ``setup`` started it."""
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()
