"""The conditional likelihood estimators of a trained masked-diffusion model: their error against the number of samples,
and the speed of our batched `continuation_log_likelihood` against LLaDA's estimator loop.

Requests are held-out validation sequences of the checkpoint's own training data (built by the same pipeline, from the
run's `train_config.yaml`): the last T tokens of a sequence are the continuation, everything before it the context,
for T in `--lengths`.

1. Error per sample: for each estimator and M samples, the spread of a request's estimate over `--seeds` seeds (the
   empirical standard error), averaged over requests as a root mean square, next to the standard error the estimate
   reports. Cost per request is M forward-pass rows (the chain rule: T rows, no variance, but it is the exact
   log-likelihood of the left-to-right factorisation, a different quantity from the ELBO the other two estimate).
   "Rows for 0.1 nats" = M (error_M / 0.1)^2 compares them per forward pass.
2. Throughput: requests per second of `continuation_log_likelihood(method="stratified")` against LLaDA's
   `get_loglikelihood` loop, re-written here from the facts in the reference (one request at a time; `mc_num //
   batch_size` passes of `batch_size` copies of the request, each copy masking exactly l of the T continuation tokens
   with l stratified over the batch, cross-entropy of the masked tokens weighted by T / l; a one-token answer takes
   one exact row, as in LLaDA). Same model, same requests,
   same M and rows per pass; timings alternate between the two so a busy machine slows both alike.

    python benchmarks/bench_likelihood.py --model docs/results/data_constrained/rules/runs/diffusion_s1_n128_e100
"""

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hf_diffusion_lm import MaskedDiffusionForLM
from hf_diffusion_lm.evaluation import continuation_log_likelihood
from hf_diffusion_lm.training import build_datasets


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a diffusion run folder of recipes/train.py")
    parser.add_argument("--requests", type=int, default=8, help="validation sequences per continuation length")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 3, 9, 27])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--throughput-requests", type=int, default=64)
    parser.add_argument("--mc", type=int, default=32, help="M of the throughput comparison (the paper: 32)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per forward pass, both implementations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["error", "throughput"], choices=["error", "throughput"])
    return parser.parse_args()


def validation_sequences(run: Path) -> list[torch.LongTensor]:
    import importlib.util

    # Loaded by path: putting recipes/ on sys.path would let recipes/evaluate.py shadow the `evaluate` library.
    spec = importlib.util.spec_from_file_location("train_recipe", Path(__file__).parents[1] / "recipes" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)

    _, config = train.parse_config([str(run / "train_config.yaml"), "--output_dir", "/tmp/bench_likelihood"])
    _, datasets, _ = build_datasets(config)
    sequences = []
    for row in datasets["validation"]:  # as trained (with BOS), up to the last scored token (no trailing padding)
        last = max(index for index, label in enumerate(row["labels"]) if label != -100)
        sequences.append(torch.tensor(row["input_ids"][: last + 1]))
    return sequences


def split(sequences, length, count):
    """(context, continuation) pairs: the last `length` tokens of each sequence are the continuation."""
    return [sequence[:-length] for sequence in sequences[:count]], [sequence[-length:] for sequence in sequences[:count]]


def llada_loglikelihood(model, context, continuation, mc_num, batch_size, generator):
    """LLaDA's estimator loop for one request (see the module docstring)."""
    mask_id = model.config.mask_token_id
    target_length = len(continuation)
    if target_length == 1:  # LLaDA scores a one-token answer with a single exact row
        mc_num = batch_size = 1
    sequence = torch.cat([context, continuation])[None].repeat(batch_size, 1)
    losses = []
    for _ in range(mc_num // batch_size):
        start = int(torch.randint(1, target_length + 1, (1,), generator=generator))
        counts = torch.linspace(start, start + (batch_size - 1) * target_length / batch_size, batch_size).round().long()
        counts = (counts - 1) % target_length + 1
        masked = torch.arange(target_length).repeat(batch_size, 1) < counts[:, None]
        masked = torch.stack([row[torch.randperm(target_length, generator=generator)] for row in masked])
        masked = torch.cat([torch.zeros(batch_size, len(context), dtype=torch.bool), masked], 1)
        noisy = sequence.masked_fill(masked, mask_id)
        logits = model(input_ids=noisy).logits
        weights = (counts.double() / target_length)[:, None].expand(-1, sequence.shape[1])
        loss = F.cross_entropy(logits[masked].double(), sequence[masked], reduction="none") / weights[masked]
        losses.append(loss.sum().item() / batch_size)
    return -sum(losses) / len(losses)


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    args = parse_args()
    torch.manual_seed(0)
    run = Path(args.model)
    model = MaskedDiffusionForLM.from_pretrained(run).eval()
    sequences = validation_sequences(run)
    print(f"model {run} ({model.num_parameters():,} parameters), {len(sequences)} validation sequences of "
          f"{len(sequences[0])} tokens, torch threads {torch.get_num_threads()}")

    if "error" in args.parts:
        error_table(args, model, sequences)
    if "throughput" in args.parts:
        throughput(args, model, sequences)


def error_table(args, model, sequences):
    print("\n## Error against samples (RMS over requests of the seed-to-seed spread; nats)\n")
    print("| T | method | M | rows/request | empirical SE | reported SE | rows for 0.1 nats |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        contexts, continuations = split(sequences, length, args.requests)
        for method in ("stratified", "antithetic"):
            for samples in args.samples:
                runs = [continuation_log_likelihood(model, contexts, continuations, method=method, mc_samples=samples,
                                                    batch_size=256, seed=seed) for seed in range(args.seeds)]
                spread = [statistics.pstdev([run[index].value for run in runs]) for index in range(len(contexts))]
                reported = [run[index].standard_error for run in runs for index in range(len(contexts))]
                empirical = math.sqrt(statistics.fmean(value**2 for value in spread))
                reported_rms = math.sqrt(statistics.fmean(value**2 for value in reported if not math.isnan(value))) \
                    if any(not math.isnan(value) for value in reported) else math.nan
                rows = 1 if (method == "stratified" and length == 1) else samples
                needed = rows * (empirical / 0.1) ** 2
                print(f"| {length} | {method} | {samples} | {rows} | {empirical:.4f} | {reported_rms:.4f} | "
                      f"{needed:.1f} |")
        print(f"| {length} | chain_rule | - | {length} | 0 | 0 | {length} |")


def throughput(args, model, sequences):
    print(f"\n## Throughput: requests/s at M = {args.mc}, {args.batch_size} rows per pass\n")
    lengths = [args.lengths[index % len(args.lengths)] for index in range(args.throughput_requests)]
    pool = sequences * (1 + args.throughput_requests // len(sequences))
    contexts = [pool[index][: -lengths[index]] for index in range(args.throughput_requests)]
    continuations = [pool[index][-lengths[index]:] for index in range(args.throughput_requests)]

    def ours():
        with torch.no_grad():
            return [estimate.value for estimate in continuation_log_likelihood(
                model, contexts, continuations, method="stratified", mc_samples=args.mc, batch_size=args.batch_size)]

    def llada():
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return [llada_loglikelihood(model, context, continuation, args.mc, args.batch_size, generator)
                    for context, continuation in zip(contexts, continuations)]

    ours(), llada()  # warm-up
    our_times, llada_times = [], []
    for _ in range(args.repeats):
        our_time, our_values = timed(ours, 1)
        llada_time, llada_values = timed(llada, 1)
        our_times.append(our_time)
        llada_times.append(llada_time)
    our_time, llada_time = statistics.median(our_times), statistics.median(llada_times)
    difference = statistics.fmean(a - b for a, b in zip(our_values, llada_values))
    print("| implementation | requests/s | seconds |")
    print("|---|---:|---:|")
    print(f"| ours (`continuation_log_likelihood`, stratified) | {len(contexts) / our_time:.1f} | {our_time:.2f} |")
    print(f"| LLaDA's loop (re-written) | {len(contexts) / llada_time:.1f} | {llada_time:.2f} |")
    print(f"\nspeed ratio ours / LLaDA: {llada_time / our_time:.2f}x (target >= 1x); mean difference of the two "
          f"estimates {difference:+.4f} nats per request (same estimator, different draws)")


if __name__ == "__main__":
    main()
