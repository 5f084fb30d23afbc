"""Generation speed of `MaskedDiffusionForLM.generate` against a plain forward pass and against AR decoding.

Measured in one run, on models of the same shape (random weights):
1. the time of one diffusion step against one plain forward pass of the same canvas (target: the sampler adds <10%);
2. the block cache at 256 new tokens, block 32, one token per step: speed-up of "prefix" and "dual" over the exact
   mode (target >= 2x on CPU) and the share of tokens where the cached output differs from the exact one;
3. diffusion tokens/s against `PermutedCausalLM` (N = 1, i.e. Llama) decoding left to right with its KV cache.

    python benchmarks/bench_generation.py                  # CPU default: width 256, 4 layers, prompt 64, 256 new
    python benchmarks/bench_generation.py --device cuda --hidden-size 768 --layers 12
"""

import argparse
import statistics
import time

import torch

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--cache-steps", type=int, default=128, help="steps of the block-cache comparison")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def median_time(function, repeats, warmup=True):
    """Median wall time of `function()` over `repeats` runs (after a warm-up run); also returns the last result."""
    result = function() if warmup else None
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    args = parse_args()
    torch.manual_seed(0)
    shape = dict(vocab_size=args.vocab, hidden_size=args.hidden_size, intermediate_size=int(8 * args.hidden_size / 3 / 64) * 64,
                 num_hidden_layers=args.layers, num_attention_heads=args.heads, max_position_embeddings=2048)
    diffusion = MaskedDiffusionForLM(MaskedDiffusionConfig(**shape, mask_token_id=args.vocab - 1)).to(args.device).eval()
    causal = PermutedCausalLM(PermutedCausalConfig(**shape)).to(args.device).eval()
    prompt = torch.randint(0, args.vocab - 1, (1, args.prompt), device=args.device)
    new = args.new_tokens
    canvas = torch.cat([prompt, torch.full((1, new), args.vocab - 1, device=args.device)], 1)
    print(f"# {args.device}, {torch.get_num_threads()} threads, width {args.hidden_size}, {args.layers} layers, "
          f"vocab {args.vocab}, prompt {args.prompt}, {new} new tokens, torch {torch.__version__}\n")

    # 1. One diffusion step against one plain forward pass of the same [1, prompt + new] canvas.
    with torch.no_grad():
        forward_time, _ = median_time(lambda: diffusion(input_ids=canvas).logits, args.repeats * 5)
    steps = 8
    print(f"| sampler ({steps} steps, {new} new tokens) | time per step | vs plain forward |\n|---|---|---|")
    print(f"| plain forward `model(input_ids)` | {forward_time * 1e3:.1f} ms | 1.00 |")
    for name, options in [
        ("greedy, low-confidence", dict()),
        ("sampled (inverse CDF, float64), low-confidence", dict(do_sample=True)),
        ("sampled, top-k 50, top-p 0.9, margin", dict(do_sample=True, top_k=50, top_p=0.9, remasking="margin")),
        ("random order, counts from the schedule", dict(remasking="random", tokens_per_step="schedule")),
        ("greedy, blocks of 32 (exact)", dict(block_length=args.block)),
    ]:
        total, _ = median_time(lambda: diffusion.generate(prompt, max_new_tokens=new, steps=steps, seed=0, **options),
                               args.repeats)
        print(f"| {name} | {total / steps * 1e3:.1f} ms | {total / steps / forward_time:.2f} |")

    # 2. Block cache: 256 new tokens, block 32.
    steps = args.cache_steps
    print(f"\n| block cache ({new} new, block {args.block}, {steps} steps) | tokens/s | speed-up | tokens differing "
          "from exact |\n|---|---|---|---|")
    exact_time, exact = median_time(
        lambda: diffusion.generate(prompt, max_new_tokens=new, steps=steps, block_length=args.block, seed=0), 1, False
    )
    print(f"| none (exact) | {new / exact_time:.1f} | 1.00 | - |")
    cache_rows = []
    for mode in ("prefix", "dual"):
        cached_time, cached = median_time(
            lambda: diffusion.generate(
                prompt, max_new_tokens=new, steps=steps, block_length=args.block, block_cache=mode, seed=0
            ),
            1,
            False,
        )
        differing = (cached[:, args.prompt :] != exact[:, args.prompt :]).float().mean().item()
        print(f"| {mode} | {new / cached_time:.1f} | {exact_time / cached_time:.2f} | {differing:.1%} |")
        cache_rows.append((f"diffusion, {new // steps} tokens/step, block {args.block}, {mode} cache", new / cached_time, steps))
    cache_rows.insert(0, (f"diffusion, {new // steps} tokens/step, block {args.block}, exact", new / exact_time, steps))

    # 3. Diffusion against AR with a KV cache, same shape and length.
    print(f"\n| decoder ({new} new tokens) | tokens/s | network calls |\n|---|---|---|")
    ar_time, _ = median_time(
        lambda: causal.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False), args.repeats
    )
    print(f"| AR, KV cache (`PermutedCausalLM` N=1 = Llama) | {new / ar_time:.1f} | {new} |")
    for label, tokens_per_second, calls in cache_rows:
        print(f"| {label} | {tokens_per_second:.1f} | {calls} |")
    steps = new // 8
    run_time, _ = median_time(
        lambda: diffusion.generate(prompt, max_new_tokens=new, steps=steps, block_length=args.block, block_cache="dual",
                                   seed=0),
        1,
        False,
    )
    print(f"| diffusion, 8 tokens/step, block {args.block}, dual cache | {new / run_time:.1f} | {steps} |")


if __name__ == "__main__":
    main()
