"""`torch.compile` against eager, side by side in one run: the training step of both families and the diffusion
sampler's denoising step.

Training: forward + backward of `MaskedDiffusionForLM` and `PermutedCausalLM` (N = 1 and N = 16 orders), each model
eager and compiled (`torch.compile(model)`, what `TrainingArguments(torch_compile=True)` does through accelerate),
timed interleaved round by round. Sampling: `MaskedDiffusionForLM.generate` eager and with
`compile_config=CompileConfig(mode="default")` (the backbone compiled once per shape), without and with the dual
block cache. The first (compiling) call is reported apart; medians after warm-up.

    python benchmarks/bench_compile.py                 # CPU default: the rule study's shape (width 128, 4 layers, 243)
    python benchmarks/bench_compile.py --hidden-size 256 --vocab 50304 --seq 256 --batch 8
    python benchmarks/bench_compile.py --device cuda --dtype bfloat16 --hidden-size 768 --layers 12 --heads 12 \\
        --vocab 50304 --seq 1024 --batch 8 --mode max-autotune-no-cudagraphs
"""

import argparse
import statistics
import time

import torch
from transformers.generation import CompileConfig

from bench_train_step import synchronize, train_step  # the same step as the Llama comparison (this folder)
from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=33)
    parser.add_argument("--seq", type=int, default=243)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sample-batch", type=int, default=50)
    parser.add_argument("--sample-steps", type=int, default=27)
    parser.add_argument("--block-length", type=int, default=27,
                        help="blocks of the dual-cache sampler; seq / block-length must divide sample-steps")
    parser.add_argument("--sample-rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    return parser.parse_args()


def shape(args):
    return dict(
        vocab_size=args.vocab,
        hidden_size=args.hidden_size,
        intermediate_size=int(8 * args.hidden_size / 3 / 64) * 64,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        max_position_embeddings=args.seq + 1,
    )


def timed(function, device):
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def bench_training(args):
    dtype = getattr(torch, args.dtype)
    families = {
        "MaskedDiffusionForLM": MaskedDiffusionForLM(MaskedDiffusionConfig(**shape(args))),
        "PermutedCausalLM N=1": PermutedCausalLM(PermutedCausalConfig(**shape(args))),
        "PermutedCausalLM N=16": PermutedCausalLM(PermutedCausalConfig(**shape(args), num_orders=16)),
    }
    steps = {}
    for name, model in families.items():
        model = model.to(args.device, dtype).train()
        steps[(name, "eager")] = model
        steps[(name, "compiled")] = torch.compile(model, mode=args.mode)
    batch = torch.randint(0, args.vocab - 1, (args.batch, args.seq), device=args.device)
    first, times = {}, {key: [] for key in steps}
    for round_index in range(1 + args.warmup + args.rounds):
        for key, model in steps.items():
            torch.manual_seed(round_index)  # the same noise / orders for eager and compiled
            seconds = timed(lambda: train_step(model, batch), args.device)
            if round_index == 0:
                first[key] = seconds
            elif round_index > args.warmup:
                times[key].append(seconds)
    tokens = args.batch * args.seq
    print(f"\ntraining step (forward + backward), batch {args.batch} x {args.seq}, {args.rounds} rounds")
    print("| model | eager | compiled | compiled / eager | first compiled call |")
    print("|---|---|---|---|---|")
    for name in families:
        eager = statistics.median(times[(name, "eager")])
        compiled = statistics.median(times[(name, "compiled")])
        print(f"| {name} | {eager * 1e3:.1f} ms ({tokens / eager:,.0f} tok/s) | {compiled * 1e3:.1f} ms "
              f"({tokens / compiled:,.0f} tok/s) | {compiled / eager:.3f} | {first[(name, 'compiled')]:.1f} s |")


def bench_sampling(args):
    torch.manual_seed(0)
    model = MaskedDiffusionForLM(MaskedDiffusionConfig(**shape(args)))
    model = model.to(args.device, getattr(torch, args.dtype)).eval()
    compile_config = CompileConfig(mode=args.mode)
    settings = {
        "whole canvas": dict(steps=args.sample_steps),
        f"dual cache, blocks of {args.block_length}": dict(
            steps=args.sample_steps, block_length=args.block_length, block_cache="dual"
        ),
    }
    runs = {}
    for name, options in settings.items():
        options = dict(options, max_new_tokens=args.seq, do_sample=True, remasking="random", seed=0)
        runs[(name, "eager")] = dict(options)
        runs[(name, "compiled")] = dict(options, compile_config=compile_config)
    first, times, samples = {}, {key: [] for key in runs}, {}
    for round_index in range(1 + args.sample_rounds):
        for key, options in runs.items():
            seconds = timed(
                lambda: samples.__setitem__(key, model.generate(num_return_sequences=args.sample_batch, **options)),
                args.device,
            )
            if round_index == 0:
                first[key] = seconds
            else:
                times[key].append(seconds)
    print(f"\ndiffusion sampling, {args.sample_batch} samples of {args.seq} tokens in {args.sample_steps} network "
          f"calls, {args.sample_rounds} rounds")
    print("| sampler | eager | compiled | compiled / eager | first compiled call | same samples |")
    print("|---|---|---|---|---|---|")
    for name in settings:
        eager = statistics.median(times[(name, "eager")])
        compiled = statistics.median(times[(name, "compiled")])
        same = torch.equal(samples[(name, "eager")], samples[(name, "compiled")])
        print(f"| {name} | {eager:.2f} s ({args.sample_batch / eager:.1f} samples/s) | {compiled:.2f} s "
              f"({args.sample_batch / compiled:.1f} samples/s) | {compiled / eager:.3f} | "
              f"{first[(name, 'compiled')]:.1f} s | {same} |")


def main():
    args = parse_args()
    print(f"device={args.device} dtype={args.dtype} mode={args.mode} threads={torch.get_num_threads()} "
          f"torch={torch.__version__} width={args.hidden_size} layers={args.layers} vocab={args.vocab}")
    bench_training(args)
    bench_sampling(args)


if __name__ == "__main__":
    main()
