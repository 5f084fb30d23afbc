"""GPU checks: attention implementations agree, bf16 trains, and training throughput / MFU of both families.

    python benchmarks/gpu_checks.py                 # needs a CUDA device
    python benchmarks/gpu_checks.py --skip-mfu

1. Logits of every available `attn_implementation` (eager, sdpa, flex_attention, flash_attention_2 when installed)
   against eager, for both families, in float32 and under bf16 autocast, with left padding in the batch.
2. Training step throughput under bf16 autocast (what `--bf16` gives the Trainer), tokens/s and model FLOPs
   utilisation MFU = 6 N tokens/s / peak, with N the non-embedding parameters plus the head (the FLOPs count of
   `hf_diffusion_lm.flops`), next to `LlamaForCausalLM` of the same shape; eager and `torch.compile`d (what
   `--torch_compile true` gives the Trainer), at the rule study's size, GPT-2 small and the 425M shape of the
   data-constrained sweeps (1280 wide, 18 layers, 10 heads). Target: MFU >= 40% compiled.
"""

import argparse
import importlib.util
import statistics
import tempfile
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, SXM


def shape(hidden, layers, heads, vocab, seq):
    return dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=seq,
                pad_token_id=0, bos_token_id=1, eos_token_id=0)


def attention_implementations() -> list[str]:
    names = ["eager", "sdpa", "flex_attention"]
    if importlib.util.find_spec("flash_attn") is not None:
        names.append("flash_attention_2")
    return names


@torch.no_grad()
def check_attention(device) -> list[str]:
    lines = []
    kwargs = shape(256, 4, 4, 1000, 128)
    families = {"masked_diffusion": (MaskedDiffusionForLM, MaskedDiffusionConfig(**kwargs, mask_token_id=999)),
                "permuted_causal": (PermutedCausalLM, PermutedCausalConfig(**kwargs))}
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, 998, (4, 128), generator=generator)
    # The diffusion model copies unmasked tokens (their logits are one-hot), so half the inputs are MASK and only
    # the logits of MASK positions (diffusion) or of real positions (causal) are compared.
    masked = torch.rand(4, 128, generator=generator) < 0.5
    mask = torch.ones_like(tokens)
    mask[1, :17] = 0  # left padding in one row
    tokens, masked, mask = tokens.to(device), masked.to(device), mask.to(device)
    for family, (model_class, config) in families.items():
        with tempfile.TemporaryDirectory() as path:
            torch.manual_seed(0)
            model_class(config).save_pretrained(path)
            ids = torch.where(masked, 999, tokens) if family == "masked_diffusion" else tokens
            compared = mask.bool() & (masked if family == "masked_diffusion" else True)
            reference = None
            for name in attention_implementations():
                try:
                    model = model_class.from_pretrained(path, attn_implementation=name).to(device).eval()
                except (ImportError, ValueError) as error:
                    lines.append(f"{family:17s} {name:18s} unavailable: {str(error).splitlines()[0][:100]}")
                    continue
                out = {}
                for dtype in ("float32", "bfloat16"):
                    with torch.autocast("cuda", torch.bfloat16, enabled=dtype == "bfloat16"):
                        logits = model(input_ids=ids, attention_mask=mask).logits.float()
                    out[dtype] = logits[compared][:, :998]  # content tokens (MASK's logit is -inf by design)
                if reference is None:
                    reference = out
                diffs = {dtype: (out[dtype] - reference[dtype]).abs().max().item() for dtype in out}
                lines.append(f"{family:17s} {name:18s} max |logits - eager|: fp32 {diffs['float32']:.2e}, "
                             f"bf16 {diffs['bfloat16']:.2e} (max |logit| {reference['float32'].abs().max():.2f}, "
                             f"{compared.sum().item()} positions)")
    return lines


def time_train_steps(model, batch, seq, vocab, device, steps=20, warmup=5) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(2, vocab - 2, (batch, seq), device=device)
    times = []
    for step in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
        if not torch.isfinite(loss):
            raise RuntimeError(f"bf16 training produced a non-finite loss {loss.item()}")
    return statistics.median(times)


def check_throughput(device, shapes, compile_modes=(None, "default")) -> list[str]:
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    lines = [f"device {name}; peak bf16 dense {peak} TFLOP/s"]
    print(lines[0], flush=True)
    for hidden, layers, heads, vocab, seq, batch in shapes:
        kwargs = shape(hidden, layers, heads, vocab, seq)
        models = {"llama": LlamaForCausalLM(LlamaConfig(**kwargs, tie_word_embeddings=True)),
                  "masked_diffusion": MaskedDiffusionForLM(MaskedDiffusionConfig(**kwargs, mask_token_id=vocab - 1)),
                  "permuted_causal": PermutedCausalLM(PermutedCausalConfig(**kwargs))}
        for family, model in models.items():
            model = model.to(device).train()
            non_embedding = model.num_parameters(exclude_embeddings=True) + hidden * vocab  # head FLOPs count
            for mode in compile_modes:
                torch.manual_seed(0)
                step_model = model if mode is None else torch.compile(model, mode=mode)
                seconds = time_train_steps(step_model, batch, seq, vocab, device)
                tokens = batch * seq / seconds
                mfu = 6 * non_embedding * tokens / (peak * 1e12) if peak else float("nan")
                lines.append(f"width {hidden} x {layers} layers, seq {seq}, batch {batch}, {family:16s} "
                             f"{'eager' if mode is None else 'compiled':8s}: {seconds * 1e3:7.1f} ms/step, "
                             f"{tokens:10,.0f} tokens/s, MFU {mfu:.1%}")
                print(lines[-1], flush=True)
            del model
            torch.cuda.empty_cache()
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-mfu", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: these checks need a GPU.")
    device = torch.device("cuda")
    print("\n".join(check_attention(device)), flush=True)
    if not args.skip_mfu:
        # the paper's rule-study size (attribute tokens: 244 per sample), GPT-2-small-like and 425M at 1024 tokens
        check_throughput(device, [(384, 12, 6, 33, 244, 64), (768, 12, 12, 50304, 1024, 16),
                                  (1280, 18, 10, 50304, 1024, 8)])


if __name__ == "__main__":
    main()
