"""Training pieces of the transformers family: tokenised datasets, the loss, per-epoch MLflow curves, the Trainer.

Only imported when a transformers model is trained (torch and transformers are imported here at module level).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from transformers import (DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback,
                          TrainingArguments, default_data_collator)

from promptcls.class_weights import class_weight_vector
from promptcls.distributed import world_size
from promptcls.metrics import security_metrics

log = logging.getLogger(__name__)

EPOCH_METRICS = {"loss": "val_loss", "accuracy": "val_accuracy", "f1_macro": "val_f1_macro",
                 "custom_score": "val_custom_score", "critical_error_rate": "val_critical_error_rate"}
"""Validation metrics logged once per epoch (Trainer's `eval_<key>` -> MLflow name)."""


def tokenize(tokenizer, texts: list[str], max_length: int, input_names: list[str], num_proc: int = 1,
             padding: bool | str = False) -> dict[str, list]:
    """Tokenise without padding (the collator pads each batch); `num_proc` > 1 tokenises chunks in threads
    (the Rust tokenizer releases the GIL)."""
    def encode(chunk):
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=padding)
        return {k: enc[k] for k in input_names}

    if num_proc <= 1 or len(texts) < 2 * num_proc:
        return encode(texts)
    size = -(-len(texts) // num_proc)
    with ThreadPoolExecutor(num_proc) as pool:
        parts = list(pool.map(encode, [texts[i:i + size] for i in range(0, len(texts), size)]))
    return {k: [row for part in parts for row in part[k]] for k in input_names}


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenised prompts (+ labels) as a list of feature dicts, what the Trainer and its collator expect."""

    def __init__(self, encoding: dict[str, list], labels=None):
        keys = list(encoding)
        n = len(encoding[keys[0]])
        self.rows = [{k: encoding[k][i] for k in keys} for i in range(n)]
        if labels is not None:
            for row, label in zip(self.rows, labels, strict=True):
                row["labels"] = int(label)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class ClassificationLoss:
    """Cross-entropy (optionally class-weighted) or focal loss, as the Trainer's `compute_loss_func`.

    Focal loss: FL = alpha_y * (1 - p_t)^gamma * CE, with p_t = exp(-CE) taken from the *unweighted* CE (taking
    it from an alpha-weighted CE would distort p_t). Per-sample losses are summed and divided by the Trainer's
    `num_items_in_batch` (its gradient-accumulation contract), or averaged when it is not given (evaluation).
    """

    def __init__(self, kind: str = "ce", weights: list[float] | None = None, gamma: float = 2.0):
        if kind not in ("ce", "focal"):
            raise ValueError(f"loss must be ce or focal, got {kind!r}")
        self.kind, self.gamma = kind, gamma
        self.weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits.float(), labels, reduction="none")
        loss = ce if self.kind == "ce" else (1.0 - torch.exp(-ce)).pow(self.gamma) * ce
        if self.weights is not None:
            loss = self.weights.to(loss.device)[labels] * loss
        return loss

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        loss = self.per_sample(logits, labels)
        if num_items_in_batch is None:
            return loss.mean()
        return loss.sum() / torch.as_tensor(num_items_in_batch, device=loss.device, dtype=loss.dtype)


def compute_metrics(eval_pred) -> dict[str, float]:
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    proba = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1).numpy()
    return security_metrics(eval_pred.label_ids, proba.argmax(axis=1), proba)


class MlflowEpochCallback(TrainerCallback):
    """Logs exactly one point per epoch into the active MLflow run: `train_loss` and the EPOCH_METRICS, at
    `step=epoch`; progress goes to the log every ~10% of an epoch. Under torchrun only the world's process zero
    logs (the evaluation metrics it sees are already gathered from every rank)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.steps_per_epoch = 0
        self.evaluations = 0
        self.per_step = False

    def _epoch(self, state) -> int:
        """The curve's step: the epoch, or with several evaluations an epoch (`evals_per_epoch`) the number of
        the evaluation (the loss is logged just before its evaluation)."""
        return self.evaluations + 1 if self.per_step else int(round(state.epoch or 0))

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.start = time.perf_counter()
        self.per_step = str(args.eval_strategy) in ("steps", "IntervalStrategy.STEPS")
        self.steps_per_epoch = max(1, len(train_dataloader) if train_dataloader is not None
                                   else state.max_steps // max(1, int(args.num_train_epochs)))

    def on_step_end(self, args, state, control, **kwargs):
        every = max(1, self.steps_per_epoch // 10)
        if state.is_world_process_zero and state.global_step % every == 0:
            log.info("epoch %.2f, step %d/%d, %.0f s", state.epoch, state.global_step, state.max_steps,
                     time.perf_counter() - self.start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            mlflow.log_metric("train_loss", float(logs["loss"]), step=self._epoch(state))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        values = {name: float(metrics[f"eval_{key}"]) for key, name in EPOCH_METRICS.items()
                  if f"eval_{key}" in metrics}
        self.evaluations += 1
        step = self.evaluations if self.per_step else self._epoch(state)
        mlflow.log_metrics(values, step=step)
        log.info("evaluation %d (epoch %.2f, %.0f s): %s", self.evaluations, state.epoch or 0,
                 time.perf_counter() - self.start, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))


class WallClockCallback(TrainerCallback):
    """Stops training once `minutes` have passed: one last evaluation and checkpoint, then the best checkpoint is
    restored as with early stopping. 0 = no cap."""

    def __init__(self, minutes: float):
        self.seconds, self.start, self.fired = minutes * 60, time.perf_counter(), False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def _fire(self, state, outcome: str) -> bool:
        """True once, the first time it is asked after the cap has passed (never with no cap)."""
        if not self.seconds or self.fired or time.perf_counter() - self.start < self.seconds:
            return False
        self.fired = True
        log.info("wall-clock cap of %.1f min reached at step %d (epoch %.2f): %s", self.seconds / 60,
                 state.global_step, state.epoch or 0, outcome)
        return True

    def on_step_end(self, args, state, control, **kwargs):
        if self._fire(state, "stopping after this evaluation"):
            control.should_evaluate = control.should_save = control.should_training_stop = True

    def on_evaluate(self, args, state, control, **kwargs):
        """The cap passed during a scheduled evaluation: stop on it, rather than run a second one a step later
        (34 s of MiniLM on validation in the main job)."""
        if self._fire(state, "stopping on this evaluation"):
            control.should_training_stop = True


def training_steps(args, steps_per_epoch: int) -> tuple[int, str]:
    """The last scheduled step and which bound sets it: `max_epochs` epochs, or the step budget `max_steps` when
    it comes first (0 = none). The learning-rate schedule decays to zero at that step."""
    by_epochs = args.max_epochs * steps_per_epoch
    budget = getattr(args, "max_steps", 0)
    return (budget, "max_steps") if 0 < budget < by_epochs else (by_epochs, "max_epochs")


def stop_reason(state, cap: WallClockCallback, step_budget: bool = False) -> str:
    """What ended training: `time_cap` (the wall-clock cap fired), `early_stopping` (before the last scheduled
    step), or the bound of `training_steps` that set the last step: `max_steps` (a step budget) or `max_epochs`."""
    if cap.fired:
        return "time_cap"
    if state.global_step < state.max_steps:
        return "early_stopping"
    return "max_steps" if step_budget else "max_epochs"


def freeze_lower_layers(model, n_layers: int) -> None:
    """Keep the embedding layer and the lowest `n_layers` encoder layers fixed (the Trainer's optimizer skips them and
    the backward pass stops above them). The encoder's layers are the one module list of `num_hidden_layers`."""
    base, total = model.base_model, model.config.num_hidden_layers
    stacks = [m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == total]
    embeddings = getattr(base, "embeddings", None)
    if embeddings is None or len(stacks) != 1:
        raise ValueError(f"freeze_layers={n_layers}: no embedding layer and single stack of {total} encoder layers "
                         f"found in this {model.config.model_type} model; train it with freeze_layers=0")
    if n_layers >= total:
        raise ValueError(f"freeze_layers={n_layers}: the model has {total} encoder layers; freeze fewer")
    for module in (embeddings, *stacks[0][:n_layers]):
        module.requires_grad_(False)


def precision_flags(precision: str) -> dict[str, bool]:
    """fp16/bf16 only on a GPU; `auto` picks bf16 where supported, else fp16, and fp32 on CPU."""
    if not torch.cuda.is_available():
        if precision in ("fp16", "bf16"):
            log.warning("precision=%s needs a GPU; training in fp32 on CPU", precision)
        return {"fp16": False, "bf16": False}
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def ddp_flags(cuda: bool) -> dict:
    """DistributedDataParallel settings, inert in a single process. Under torchrun on CPU the Trainer needs the
    gloo backend (with CUDA it picks nccl). Every parameter gets a gradient (no unused-parameter search), and
    the loss is NOT averaged over the tokens of all devices: with it, models whose forward takes **kwargs (BERT)
    had their loss and gradients multiplied by the world size."""
    return {"ddp_backend": "gloo" if world_size() > 1 and not cuda else None,
            "ddp_find_unused_parameters": False, "average_tokens_across_devices": False}


def leave_process_group() -> None:
    """After `Trainer.train` under torchrun, on every rank: leave the process group. Rank 0 then evaluates and
    logs alone while the others exit; an accidental collective operation after this point fails at once instead of
    waiting forever for ranks that are gone. No-op in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def build_trainer(model, tokenizer, train_ds, val_ds, args, output_dir: str, loss: ClassificationLoss,
                  callbacks=(), fixed_padding: bool = False) -> Trainer:
    """The HF Trainer: AdamW, linear warm-up and decay to zero at the last scheduled step (`training_steps`), weight
    decay, clipping, per-epoch evaluation and checkpoints (in `output_dir`, a temp dir: nothing goes to MLflow),
    early stopping on val custom_score with the best checkpoint restored, length-grouped batches with dynamic
    padding. Under torchrun it trains with DDP: each
    process takes `batch_size` prompts a step (the effective batch is WORLD_SIZE x batch_size), evaluation is
    sharded and gathered, and rank 0 writes the checkpoints."""
    cuda = torch.cuda.is_available()
    evals = getattr(args, "evals_per_epoch", 1)
    steps_per_epoch = math.ceil(len(train_ds) / (args.batch_size * world_size()))
    total, bound = training_steps(args, steps_per_epoch)
    # a step budget ends mid-epoch: evaluate by steps so that its last step is evaluated (the Trainer evaluates the
    # final step under the steps strategy, not under the epoch one)
    every = max(1, steps_per_epoch // evals) if evals > 1 or bound == "max_steps" else None
    strategy = {"eval_strategy": "steps", "save_strategy": "steps", "logging_strategy": "steps",
                "eval_steps": every, "save_steps": every, "logging_steps": every} if every else \
        {"eval_strategy": "epoch", "save_strategy": "epoch", "logging_strategy": "epoch"}
    training_args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=args.max_epochs,
        max_steps=total if bound == "max_steps" else -1,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,          # a float < 1 is a share of the training steps
        max_grad_norm=args.max_grad_norm,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        **strategy,
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="custom_score",
        greater_is_better=True,
        train_sampling_strategy="random" if fixed_padding else "group_by_length",
        dataloader_num_workers=args.dataloader_num_workers,
        dataloader_pin_memory=cuda,
        use_cpu=not cuda,
        **ddp_flags(cuda),
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
        seed=args.seed,
        **precision_flags(args.precision),
    )
    # fixed padding (benchmark baseline): features already padded to max_length, stacked as they are
    collator = (default_data_collator if fixed_padding
                else DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if cuda else None))
    trainer = Trainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
        data_collator=collator, compute_loss_func=loss, compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=args.patience),
                   WallClockCallback(getattr(args, "max_train_minutes", 0)), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # prints every log dict to stdout; MlflowEpochCallback logs instead
    return trainer


def class_weights(spec: str, labels: np.ndarray) -> list[float] | None:
    """The loss's per-class weights (promptcls/class_weights.py): None for `none`."""
    weights = class_weight_vector(spec, labels)
    return None if weights is None else weights.tolist()
