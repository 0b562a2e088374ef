"""Which process of a `torchrun` job this is.

torchrun starts one process per device and gives each RANK (0..WORLD_SIZE-1), LOCAL_RANK and WORLD_SIZE; a plain
`python -m ...` or `mlflow run` has none of them and is the only process, rank 0. Every decision of the form "only
one process logs" reads it here. Only the transformers family trains across processes (the HF Trainer's DDP); rank 0
alone opens the MLflow run and logs, evaluates and logs the model after training.
"""

from __future__ import annotations

import os

from promptcls.config import UsageError


def world_size() -> int:
    """Processes in the job (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process logs to MLflow: rank 0, or the only process."""
    return rank() == 0


def require_single_process(what: str) -> None:
    """Fail, on every rank and before anything is logged, when `what` is launched by torchrun with WORLD_SIZE > 1."""
    if world_size() > 1:
        raise UsageError(f"{what} runs in one process, but this is rank {rank()} of WORLD_SIZE={world_size()} "
                         "(torchrun): only the transformers entry point trains across processes. Launch this one "
                         "with plain python or `mlflow run`.")
