"""`LMTrainer`: the `Trainer` with what a data-constrained comparison of diffusion and AR needs, and nothing else.

- Diffusion noise drawn over the **global** batch (all processes and accumulation steps): one antithetic set of times
  per optimizer step, with the masks and the permuted-AR orders, all a function of (seed, step, position in the
  global batch). So every process takes its own slice without communication, and 1 process or N processes with the
  same global batch see identical noise (and identical losses).
- Deterministic validation: the diffusion ELBO averaged over K Monte Carlo repetitions with fixed seeds; AR NLL left
  to right. Reported in nats/token, bits/token and perplexity (a bound for diffusion).
- Logs tokens seen, epochs over the unique data, FLOPs (C = 6 N D) and the masked fraction.
"""

import math

import torch
from transformers import EarlyStoppingCallback, Trainer
from transformers.trainer_utils import EvalLoopOutput

from ..flops import reference_parameter_count, training_flops
from ..schedules import sample_times


OUR_FAMILIES = ("masked_diffusion", "permuted_causal")


def global_batch_noise(
    seed: int, step: int, num_sequences: int, seq_length: int, method: str = "antithetic", eps: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Times `[num_sequences]` and mask uniforms `[num_sequences, seq_length]` for one optimizer step's global batch.

    The times are one antithetic (or i.i.d.) set over the whole global batch, shuffled so that every micro-batch gets
    a spread of noise levels; a token of sequence i is masked when its uniform is below 1 - alpha(t_i).
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    times = sample_times(num_sequences, method, eps, generator=generator)
    times = times[torch.randperm(num_sequences, generator=generator)]
    return times, torch.rand(num_sequences, seq_length, generator=generator)


class LMTrainer(Trainer):
    """Trains `MaskedDiffusionForLM`, `PermutedCausalLM` and any transformers causal LM on equal terms.

    Args (beyond `Trainer`'s):
        unique_tokens: U, the number of unique training tokens, for the epochs-over-unique-data log.
    """

    def __init__(self, *args, unique_tokens: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unique_tokens = unique_tokens
        config = self.model.config
        self.family = config.model_type if config.model_type in OUR_FAMILIES else "causal_lm"
        # Our families are counted with the paper's formula so FLOPs compare with its scaling laws.
        self.flops_parameters = (
            reference_parameter_count(config) if self.family in OUR_FAMILIES else self.model.num_parameters()
        )
        self._noise_step, self._micro_batch = -1, 0
        self._masked_fractions = []
        if self.args.early_stopping_patience:
            self.add_callback(EarlyStoppingCallback(early_stopping_patience=self.args.early_stopping_patience))

    # ---- training ---------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            inputs = {**inputs, **self.global_batch_inputs(inputs)}
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if getattr(outputs, "masked_fraction", None) is not None:
            self._masked_fractions.append(outputs.masked_fraction.detach())
        return (loss, outputs) if return_outputs else loss

    def global_batch_inputs(self, inputs: dict) -> dict:
        """This micro-batch's slice of the global batch's noise times and masks (diffusion) or orders (permuted AR)."""
        config = self.model.config
        if self.state.global_step != self._noise_step:
            self._noise_step, self._micro_batch = self.state.global_step, 0
        # Global batch layout of accelerate's sharded loader: micro-batch a of process r is slot a * world + r.
        slot = self._micro_batch * self.args.world_size + self.args.process_index
        self._micro_batch += 1
        batch_size, seq_length = inputs["input_ids"].shape
        per_slot = self.args.per_device_train_batch_size
        num_sequences = per_slot * self.args.world_size * self.args.gradient_accumulation_steps
        rows = slice(slot * per_slot, slot * per_slot + batch_size)
        device = inputs["input_ids"].device
        if self.family == "masked_diffusion":
            times, uniforms = global_batch_noise(self.args.seed, self.state.global_step, num_sequences, seq_length,
                                                 config.time_sampling, config.time_epsilon)
            noise_mask = uniforms[rows] < self.model.noise_schedule.masking_probability(times[rows])[:, None]
            return {"noise_times": times[rows].to(device), "noise_mask": noise_mask.to(device)}
        if self.family == "permuted_causal" and config.num_orders > 1:
            generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step)
            orders = torch.randint(config.num_orders, (num_sequences,), generator=generator)
            return {"order_index": orders[rows].to(device)}
        return {}

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

    # ---- validation -------------------------------------------------------------------------------------------
    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """Validation loss per scored token: the diffusion ELBO over `validation_repeats` fixed-seed Monte Carlo
        repetitions (the same number at every evaluation of the same weights), or the left-to-right NLL."""
        model = self.model
        model.eval()
        repeats = self.args.validation_repeats if self.family == "masked_diffusion" else 1
        loss_sums = torch.zeros(repeats, dtype=torch.float64, device=self.args.device)
        scored = torch.zeros((), dtype=torch.float64, device=self.args.device)
        num_samples = 0
        for batch_index, inputs in enumerate(dataloader):
            inputs = self._prepare_inputs(inputs)
            labels = inputs["labels"]
            num_samples += labels.shape[0]
            scored += (labels[..., 1:] if self._loss_shifts_labels else labels).ne(-100).sum()
            for repeat in range(repeats):
                extra = self.validation_noise(inputs, repeat, batch_index) if self.family == "masked_diffusion" else {}
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

    def summed_loss(self, model, inputs: dict) -> torch.Tensor:
        """The batch's loss summed over its scored tokens."""
        if self.model_accepts_loss_kwargs:
            return model(**inputs, num_items_in_batch=1).loss.double()
        labels = inputs["labels"]
        count = (labels[..., 1:] if self._loss_shifts_labels else labels).ne(-100).sum()
        return model(**inputs).loss.double() * count

    def validation_noise(self, inputs: dict, repeat: int, batch_index: int) -> dict:
        """Fixed times (antithetic within the batch) and masks for one Monte Carlo repetition of one batch."""
        config = self.model.config
        batch_size, seq_length = inputs["input_ids"].shape
        global_batch = batch_index * self.args.world_size + self.args.process_index
        generator = torch.Generator().manual_seed(
            (self.args.validation_seed * 1_000_003 + global_batch) * 1_009 + repeat
        )
        times = sample_times(batch_size, "antithetic", config.time_epsilon, generator=generator)
        masking_probability = self.model.noise_schedule.masking_probability(times)[:, None]
        noise_mask = torch.rand(batch_size, seq_length, generator=generator) < masking_probability
        device = inputs["input_ids"].device
        return {"noise_times": times.to(device), "noise_mask": noise_mask.to(device)}
