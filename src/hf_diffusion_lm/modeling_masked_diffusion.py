"""`MaskedDiffusionForLM`: a bidirectional transformer trained with the masked-diffusion ELBO."""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers.utils import ModelOutput

from .configuration_masked_diffusion import MaskedDiffusionConfig
from .generation_masked_diffusion import MaskedDiffusionGenerationConfig, MaskedDiffusionGenerationMixin
from .modeling_backbone import BackboneModel, BackbonePreTrainedModel, check_labels_shape, check_token_ids
from .schedules import get_noise_schedule, sample_times


@dataclass
class MaskedDiffusionOutput(ModelOutput):
    """
    Args:
        loss: the masked-diffusion loss (the ELBO by default) in nats per scored token, when `labels` were given.
        logits: `[batch, seq, vocab]`. Without labels the MASK logit is -inf; with labels they are the raw head
            output (the loss excludes MASK exactly, without the copy that writing -inf into the logits costs).
        noise_times: `[batch]` diffusion times used for the loss.
        noise_mask: `[batch, seq]` bool, the positions replaced by MASK.
        masked_fraction: share of the scored tokens that were masked.
        masked_token_loss: unweighted mean cross-entropy of the masked tokens (nats).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    noise_times: torch.FloatTensor | None = None
    noise_mask: torch.BoolTensor | None = None
    masked_fraction: torch.FloatTensor | None = None
    masked_token_loss: torch.FloatTensor | None = None


class MaskedDiffusionForLM(BackbonePreTrainedModel, MaskedDiffusionGenerationMixin):
    """Absorbing-state diffusion LM: predicts the clean token at every MASK position of a partially masked input.

    Not conditioned on time (MDLM's "SUBS"): the network only sees which tokens are masked, which is what lets a
    sampler reuse predictions across steps. `generate` (see `generation_masked_diffusion.py`) fills MASK positions.
    """

    config: MaskedDiffusionConfig
    generation_config_class = MaskedDiffusionGenerationConfig
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    remote_code_auto_classes = ("AutoModel", "AutoModelForMaskedLM")

    def __init__(self, config: MaskedDiffusionConfig):
        super().__init__(config)
        self.model = BackboneModel(config, is_causal=False)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.noise_schedule = get_noise_schedule(config.noise_schedule, config.time_epsilon)
        self.post_init()

    def draw_training_randomness(
        self, num_sequences: int, seq_length: int, generator: torch.Generator | None = None, device=None
    ) -> dict[str, torch.Tensor]:
        """The random inputs of a training batch, drawn from `generator`: `noise_times` `[num_sequences]` and
        `noise_mask` `[num_sequences, seq_length]`.

        The times are one antithetic (or i.i.d.) set over all the rows, shuffled so that any slice of rows (a
        process's share of a global batch) spans the noise levels. `forward` uses this when it is given no noise;
        a trainer calls it once for the global batch with a keyed generator and hands every process its rows.
        """
        times = sample_times(num_sequences, self.config.time_sampling, self.config.time_epsilon,
                             generator=generator, device=device)
        times = times[torch.randperm(num_sequences, generator=generator, device=device)]
        return {"noise_times": times, "noise_mask": self.draw_noise_mask(times, seq_length, generator)}

    def draw_noise_mask(
        self, noise_times: torch.Tensor, seq_length: int, generator: torch.Generator | None = None
    ) -> torch.BoolTensor:
        """Forward process: each token of row i is masked independently with probability 1 - alpha(t_i).

        noise_times: `[batch]`. Returns a `[batch, seq_length]` bool mask.
        """
        masking_probability = self.noise_schedule.masking_probability(noise_times.float())[:, None]
        draws = torch.rand(len(noise_times), seq_length, generator=generator, device=noise_times.device)
        return draws < masking_probability

    def diffusion_loss(
        self,
        logits: torch.Tensor,
        clean_ids: torch.LongTensor,
        noise_mask: torch.BoolTensor,
        noise_times: torch.Tensor,
        num_scored: torch.Tensor | int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked-diffusion objective: sum over masked tokens of w(t) * CE, divided by `num_scored`.

        With the ELBO weight its expectation over t and the masks is the negative ELBO per scored token. Returns
        `(loss, masked_token_loss)`, the latter the unweighted mean CE over masked tokens (for logging).
        """
        log_probs = F.log_softmax(logits.float(), dim=-1)
        # One gather picks the target and the MASK column (the cost of a plain cross-entropy); renormalising without
        # MASK, log p(x | not MASK) = log p(x) - log(1 - p(MASK)), equals a -inf MASK logit without copying logits.
        mask_column = torch.full_like(clean_ids, self.config.mask_token_id)
        picked = log_probs.gather(-1, torch.stack([clean_ids, mask_column], dim=-1))
        token_ce = torch.log(-torch.expm1(picked[..., 1])) - picked[..., 0]
        token_ce = torch.where(noise_mask, token_ce, 0.0)  # [batch, seq]
        if self.config.loss_weighting == "elbo":
            weights = self.noise_schedule.elbo_weight(noise_times.float())
        else:
            weights = torch.ones_like(noise_times, dtype=torch.float)
        loss = (token_ce * weights[:, None]).sum() / num_scored
        masked_token_loss = token_ce.detach().sum() / noise_mask.sum().clamp(min=1)
        return loss, masked_token_loss

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        noise_times: torch.Tensor | None = None,
        noise_mask: torch.BoolTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> MaskedDiffusionOutput:
        """
        Args:
            input_ids: `[batch, seq]`. Without `labels`, the (possibly masked) input to denoise. With `labels`, the
                clean sequence is `labels` where they are not -100 and `input_ids` elsewhere.
            attention_mask: `[batch, seq]`, 0 on padding; attention is bidirectional over the rest.
            labels: `[batch, seq]` clean token ids, -100 where a position is never noised nor scored (prompt,
                padding). When given, the model noises the sequence itself and returns the loss.
            noise_times: `[batch]` times in (0, 1] to use instead of drawing them (a trainer coordinates them
                across processes); drawn with `config.time_sampling` otherwise.
            noise_mask: `[batch, seq]` bool, the positions to mask instead of drawing them (needs `noise_times`
                unless `loss_weighting="uniform"`). Positions with label -100 are never masked.
            num_items_in_batch: the number of scored tokens in the whole (global, accumulated) batch, passed by
                the `Trainer`; the loss is divided by it instead of by this batch's count.
        Returns:
            `MaskedDiffusionOutput`: logits `[batch, seq, vocab]` and, with labels, the loss in nats per scored
            token plus what a trainer logs.
        """
        if input_ids is not None:
            check_token_ids("input_ids", input_ids, self.config.vocab_size)
        if labels is None:
            outputs = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
                **kwargs,
            )
            logits = self.denoising_logits(self.prediction_states(outputs.last_hidden_state), input_ids)
            return MaskedDiffusionOutput(
                logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
            )

        if input_ids is None:
            raise ValueError("Training with labels needs input_ids (the clean sequence), not inputs_embeds.")
        check_labels_shape(labels, input_ids)
        check_token_ids("labels", labels, self.config.vocab_size, ignore_index=-100)
        scored = labels != -100
        clean_ids = torch.where(scored, labels, input_ids)
        batch_size, seq_length = input_ids.shape
        if noise_times is None:
            if noise_mask is not None and self.config.loss_weighting == "elbo":
                raise ValueError("A noise_mask needs the noise_times it was drawn at, to weight the ELBO.")
            drawn = self.draw_training_randomness(batch_size, seq_length, device=input_ids.device)
            noise_times = drawn["noise_times"]
            if noise_mask is None:
                noise_mask = drawn["noise_mask"]
        if noise_times.shape != (batch_size,):
            raise ValueError(
                f"noise_times have shape {tuple(noise_times.shape)}; expected one time per sequence, ({batch_size},)."
            )
        if noise_mask is None:
            noise_mask = self.draw_noise_mask(noise_times, seq_length)
        check_labels_shape(noise_mask, input_ids)
        noise_mask = noise_mask.bool() & scored  # prompt and padding are never noised
        noisy_ids = clean_ids.masked_fill(noise_mask, self.config.mask_token_id)

        outputs = self.model(input_ids=noisy_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        logits = self.lm_head(self.prediction_states(outputs.last_hidden_state))
        num_scored_here = scored.sum()
        num_scored = num_items_in_batch if num_items_in_batch is not None else num_scored_here.clamp(min=1)
        loss, masked_token_loss = self.diffusion_loss(logits, clean_ids, noise_mask, noise_times, num_scored)
        return MaskedDiffusionOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            noise_times=noise_times,
            noise_mask=noise_mask,
            masked_fraction=(noise_mask.sum() / num_scored_here.clamp(min=1)).detach(),
            masked_token_loss=masked_token_loss,
        )

    def prediction_states(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The hidden states `[batch, seq, hidden]` that predict each position: the backbone's own, or with
        `config.shift_logits` those one position to the left (position 0 keeps its own)."""
        if not self.config.shift_logits:
            return hidden_states
        return torch.cat([hidden_states[:, :1], hidden_states[:, :-1]], dim=1)

    def output_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`lm_head` logits `[batch, seq, vocab]` with MASK's set to -inf: clean data never contains MASK."""
        logits = self.lm_head(hidden_states)
        never_mask = torch.zeros(logits.shape[-1], device=logits.device, dtype=logits.dtype)
        never_mask[self.config.mask_token_id] = float("-inf")
        return logits + never_mask

    def denoising_logits(self, hidden_states: torch.Tensor, input_ids: torch.LongTensor | None) -> torch.Tensor:
        """Logits `[batch, seq, vocab]` for a noisy input: MASK is never predicted, and with
        `config.copy_unmasked_tokens` an unmasked position keeps its own token with probability one."""
        logits = self.output_logits(hidden_states)
        if self.config.copy_unmasked_tokens and input_ids is not None:
            unmasked = input_ids != self.config.mask_token_id
            carried = torch.full_like(logits, float("-inf")).scatter_(-1, input_ids[..., None], 0.0)
            logits = torch.where(unmasked[..., None], carried, logits)
        return logits


__all__ = ["MaskedDiffusionForLM", "MaskedDiffusionOutput"]
