"""`LMTrainer`: the `Trainer` with what a data-constrained comparison of diffusion and AR needs, and nothing else.

- Training randomness drawn over the **global** batch (all processes and accumulation steps) by the model itself
  (`draw_training_randomness`: diffusion times and masks, one antithetic set of times per optimizer step; permuted-AR
  orders), from a generator keyed by (seed, step). So every process takes its own rows without communication, and
  1 process or N processes with the same global batch see identical noise (and identical losses).
- Deterministic validation: the diffusion ELBO averaged over K Monte Carlo repetitions whose draws are keyed by each
  sample's index in the validation set (independent of batch size and number of processes); AR NLL left to right.
  Reported in nats/token, bits/token and perplexity (a bound for diffusion).
- Logs tokens seen, epochs over the unique data, FLOPs (C = 6 N D) and the masked fraction.
"""

import math
import time

import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_utils import EvalLoopOutput

from ..families import flops_parameter_count, is_diffusion_model
from ..flops import training_flops
from ..stats import keyed_generator


class LMTrainer(Trainer):
    """Trains `MaskedDiffusionForLM`, `PermutedCausalLM` and any transformers causal LM on equal terms.

    A model that draws random inputs in training (diffusion times and masks, permuted-AR orders) exposes
    `draw_training_randomness(num_sequences, seq_length, generator)`; the trainer calls it once per optimizer step for
    the whole global batch with a generator keyed by (seed, step), and gives every micro-batch its rows. A model whose
    loss is a Monte Carlo estimate (`is_diffusion` in `hf_diffusion_lm.FAMILIES`) is validated over
    `validation_repeats` fixed draws.

    Args (beyond `Trainer`'s):
        unique_tokens: U, the number of unique training tokens, for the epochs-over-unique-data log.
    """

    def __init__(self, *args, unique_tokens: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unique_tokens = unique_tokens
        self.flops_parameters = flops_parameter_count(self.model)
        self._noise_step, self._micro_batch = -1, 0
        self._masked_fractions = []
        if self.args.early_stopping_patience:
            self.add_callback(EarlyStoppingCallback(early_stopping_patience=self.args.early_stopping_patience))
        self.time_limit = StopAfterSeconds(self.args.stop_after_seconds) if self.args.stop_after_seconds else None
        if self.time_limit:
            self.add_callback(self.time_limit)

    @property
    def stopped_at_time_limit(self) -> bool:
        """Training ended early because `stop_after_seconds` ran out (a checkpoint of the last step was saved)."""
        return bool(self.time_limit and self.time_limit.stopped)

    # ---- training ---------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            inputs = {**inputs, **self.global_batch_inputs(inputs)}
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if getattr(outputs, "masked_fraction", None) is not None:
            self._masked_fractions.append(outputs.masked_fraction.detach())
        return (loss, outputs) if return_outputs else loss

    def global_batch_inputs(self, inputs: dict) -> dict:
        """This micro-batch's rows of the global batch's random inputs (nothing for a model that draws none)."""
        draw = getattr(self.model, "draw_training_randomness", None)
        if draw is None:
            return {}
        if self.state.global_step != self._noise_step:
            self._noise_step, self._micro_batch = self.state.global_step, 0
        # Global batch layout of accelerate's sharded loader: micro-batch a of process r is slot a * world + r.
        slot = self._micro_batch * self.args.world_size + self.args.process_index
        self._micro_batch += 1
        batch_size, seq_length = inputs["input_ids"].shape
        per_slot = self.args.per_device_train_batch_size
        num_sequences = per_slot * self.args.world_size * self.args.gradient_accumulation_steps
        rows = slice(slot * per_slot, slot * per_slot + batch_size)
        drawn = draw(num_sequences, seq_length, generator=keyed_generator(self.args.seed, self.state.global_step))
        return {name: value[rows].to(inputs["input_ids"].device) for name, value in drawn.items()}

    def floating_point_ops(self, inputs: dict) -> float:
        return training_flops(self.flops_parameters, inputs["input_ids"].numel())

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log, not an evaluation one
            tokens = self.state.num_input_tokens_seen
            logs["tokens_seen"] = tokens
            logs["flops"] = self.state.total_flos
            if self.unique_tokens:
                logs["unique_tokens"] = self.unique_tokens
                logs["epochs_over_unique"] = tokens / self.unique_tokens
            if self._masked_fractions:
                logs["masked_fraction"] = torch.stack(self._masked_fractions).float().mean().item()
                self._masked_fractions = []
        super().log(logs, start_time)

    # ---- publishing -------------------------------------------------------------------------------------------
    def create_model_card(self, **kwargs) -> None:
        """`push_to_hub` writes this package's card (built from the run's files) instead of the Trainer's own."""
        if self.is_world_process_zero():
            from ..publishing import write_model_card

            write_model_card(self.args.output_dir, getattr(self, "hub_model_id", None) or self.args.hub_model_id)

    # ---- validation -------------------------------------------------------------------------------------------
    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """Validation loss per scored token: the diffusion ELBO over `validation_repeats` fixed Monte Carlo draws
        (the same number at every evaluation of the same weights, whatever the batch size or number of processes),
        or the left-to-right NLL."""
        model = self.model
        model.eval()
        monte_carlo = is_diffusion_model(model)
        repeats = self.args.validation_repeats if monte_carlo else 1
        loss_sums = torch.zeros(repeats, dtype=torch.float64, device=self.args.device)
        scored = torch.zeros((), dtype=torch.float64, device=self.args.device)
        num_samples = 0
        for batch_index, inputs in enumerate(dataloader):
            inputs = self._prepare_inputs(inputs)
            sample_index = self.validation_sample_indices(batch_index, inputs["input_ids"].shape[0])
            # Rows past the end repeat early samples to even out the processes' batches: score them nowhere.
            inputs["labels"] = inputs["labels"].masked_fill((sample_index >= len(dataloader.dataset))[:, None], -100)
            labels = inputs["labels"]
            num_samples += labels.shape[0]
            scored += (labels[..., 1:] if self._loss_shifts_labels else labels).ne(-100).sum()
            noise = self.validation_randomness(sample_index, labels.shape[1], repeats) if monte_carlo else [{}]
            for repeat in range(repeats):
                extra = {name: value.to(labels.device) for name, value in noise[repeat].items()}
                with torch.no_grad():
                    loss_sums[repeat] += self.summed_loss(model, {**inputs, **extra})
        loss_sums = self.accelerator.reduce(loss_sums, reduction="sum")
        scored = self.accelerator.reduce(scored, reduction="sum")
        per_repeat = loss_sums / scored.clamp(min=1)
        loss = per_repeat.mean().item()
        metrics = {
            f"{metric_key_prefix}_loss": loss,
            f"{metric_key_prefix}_bits_per_token": loss / math.log(2),
            f"{metric_key_prefix}_perplexity": math.exp(min(loss, 700.0)),
        }
        if repeats > 1:
            metrics[f"{metric_key_prefix}_loss_standard_error"] = (per_repeat.std() / math.sqrt(repeats)).item()
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=num_samples)

    def validation_sample_indices(self, batch_index: int, batch_size: int) -> torch.Tensor:
        """`[batch]` index in the validation set of each row of this process's batch `batch_index` (accelerate's
        sharded loader hands process r the batches r, r + world, ...; indices past the end are padding)."""
        first = (batch_index * self.args.world_size + self.args.process_index) * self.args.eval_batch_size
        return torch.arange(first, first + batch_size)

    def validation_randomness(self, sample_index: torch.Tensor, seq_length: int, repeats: int) -> list[dict]:
        """Per repetition, the batch's fixed random inputs. Sample i's draws for all repetitions come from one
        generator keyed by (validation_seed, i), so they do not depend on the batch or the process that holds the
        sample, and its `repeats` noise times are one antithetic set."""
        draws = [self.model.draw_training_randomness(repeats, seq_length,
                                                     generator=keyed_generator(self.args.validation_seed, int(index)))
                 for index in sample_index]
        return [{name: torch.stack([draw[name][repeat] for draw in draws]) for name in draws[0]}
                for repeat in range(repeats)]

    def summed_loss(self, model, inputs: dict) -> torch.Tensor:
        """The batch's loss summed over its scored tokens."""
        if self.model_accepts_loss_kwargs:
            return model(**inputs, num_items_in_batch=1).loss.double()
        labels = inputs["labels"]
        count = (labels[..., 1:] if self._loss_shifts_labels else labels).ne(-100).sum()
        return model(**inputs).loss.double() * count


class StopAfterSeconds(TrainerCallback):
    """Saves a checkpoint and stops training once `seconds` of wall-clock time have passed since `train` began.
    Processes agree on the clock (the slowest one's, through a max all-reduce), so all stop after the same step."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = None
        self.stopped = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.stopped = time.monotonic(), False

    def on_step_end(self, args, state, control, **kwargs):
        elapsed = torch.tensor([time.monotonic() - self.started], device=args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
        if elapsed.item() >= self.seconds and state.global_step < state.max_steps:
            control.should_save = control.should_training_stop = self.stopped = True
