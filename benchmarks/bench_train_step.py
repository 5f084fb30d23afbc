"""Time one training step (forward + backward) of both families against `LlamaForCausalLM` of the same shape.

All models are timed in one run, interleaved round by round so that machine drift hits them equally; the script
prints the median step time of each and its ratio to Llama. Target: both families within 5% of the Llama step.

    python benchmarks/bench_train_step.py                      # CPU default: width 256, 4 layers, seq 256
    python benchmarks/bench_train_step.py --device cuda --dtype bfloat16 --hidden-size 768 --layers 12 --seq 1024
"""

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--attn", default="sdpa")
    return parser.parse_args()


def build_models(args):
    shape = dict(
        vocab_size=args.vocab,
        hidden_size=args.hidden_size,
        intermediate_size=int(8 * args.hidden_size / 3 / 64) * 64,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        max_position_embeddings=args.seq,
        tie_word_embeddings=True,
        attn_implementation=args.attn,
    )
    models = {
        "LlamaForCausalLM": LlamaForCausalLM(LlamaConfig(**shape)),
        "PermutedCausalLM N=1": PermutedCausalLM(PermutedCausalConfig(**shape)),
        "PermutedCausalLM N=16": PermutedCausalLM(PermutedCausalConfig(**shape, num_orders=16)),
        "MaskedDiffusionForLM": MaskedDiffusionForLM(MaskedDiffusionConfig(**shape, mask_token_id=args.vocab - 1)),
    }
    dtype = getattr(torch, args.dtype)
    return {name: model.to(args.device, dtype).train() for name, model in models.items()}


def train_step(model, batch):
    model.zero_grad(set_to_none=True)
    model(input_ids=batch, labels=batch).loss.backward()


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    args = parse_args()
    torch.manual_seed(0)
    models = build_models(args)
    batch = torch.randint(0, args.vocab - 1, (args.batch, args.seq), device=args.device)
    parameters = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    assert len(set(parameters.values())) == 1, parameters
    times = {name: [] for name in models}
    for round_index in range(args.warmup + args.rounds):
        for name, model in models.items():
            synchronize(args.device)
            start = time.perf_counter()
            train_step(model, batch)
            synchronize(args.device)
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - start)
    tokens = args.batch * args.seq
    print(f"device={args.device} dtype={args.dtype} attn={args.attn} params={parameters['LlamaForCausalLM']:,} "
          f"batch={args.batch}x{args.seq} threads={torch.get_num_threads()} rounds={args.rounds}")
    baseline = statistics.median(times["LlamaForCausalLM"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:24s} step {median * 1e3:8.1f} ms  {tokens / median:9.0f} tokens/s  ratio to Llama {median / baseline:.3f}")


if __name__ == "__main__":
    main()
