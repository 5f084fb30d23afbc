"""Training-side throughput, measured side by side in one run.

1. Data pipeline: tokenize (datasets.map, cached) + exact U-token cut + packing of a generated text corpus, in
   tokens/s, with a byte-level BPE trained on the spot (a fast tokenizer, as GPT-2's) on 1 and 2 processes.
2. Trainer overhead: a step of `LMTrainer` (global-batch noise, logging, FLOPs accounting) against a bare
   forward + backward + clip + AdamW step of the same model on the same batches. Target: under 10% on CPU.

    python benchmarks/bench_training.py [--documents 20000] [--steps 60]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, TrainerCallback

from hf_diffusion_lm.training import (
    LMTrainer, LMTrainingConfig, ModelArguments, build_model, build_text_datasets, ensure_mask_token, load_text_dataset,
)


WORDS = "the of and to in is was for on that with as by at from his her an which or be are this it not have".split()


def write_corpus(folder: Path, documents: int) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "corpus.txt"
    with path.open("w") as corpus:
        for _ in range(documents):
            corpus.write(" ".join(rng.choice(WORDS, size=int(rng.integers(40, 160)))) + "\n")
    return path


def train_bpe(path: Path) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train([str(path)], trainers.BpeTrainer(vocab_size=512, special_tokens=["<eos>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<eos>")
    ensure_mask_token(fast)
    return fast


def bench_pipeline(folder: Path, documents: int):
    path = write_corpus(folder, documents)
    tokenizer = train_bpe(path)
    corpus = load_text_dataset("text", [str(path)])
    for num_proc in (None, 2):
        corpus.cleanup_cache_files()
        start = time.perf_counter()
        data = build_text_datasets(corpus, tokenizer, block_size=512, validation_tokens=50_000, num_proc=num_proc)
        seconds = time.perf_counter() - start
        tokens = int(np.sum(np.array(data["train"]["labels"]) != -100)) + 50_000
        print(f"pipeline  processes={num_proc or 1}  {tokens:,} tokens in {seconds:.2f} s  "
              f"{tokens / seconds:,.0f} tokens/s (tokenize + cut + pack, cold cache)")
        start = time.perf_counter()
        build_text_datasets(corpus, tokenizer, block_size=512, validation_tokens=50_000, num_proc=num_proc)
        warm = time.perf_counter() - start
        print(f"pipeline  processes={num_proc or 1}  warm cache {warm:.2f} s  {tokens / warm:,.0f} tokens/s")
    return tokenizer, data


class StepClock(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def bench_trainer(folder: Path, tokenizer, data, steps: int, warmup: int = 5):
    arguments = ModelArguments(model="masked_diffusion",
                               model_config=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4))
    config = LMTrainingConfig(output_dir=str(folder / "out"), use_cpu=True, per_device_train_batch_size=8,
                              max_steps=steps + warmup, learning_rate=1e-3, logging_steps=10, report_to="none",
                              save_strategy="no", eval_strategy="no", disable_tqdm=True, seed=0,
                              dataloader_drop_last=True)
    torch.manual_seed(0)
    trainer = LMTrainer(model=build_model(arguments, tokenizer, 512), args=config, train_dataset=data["train"],
                        processing_class=tokenizer, unique_tokens=1)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    trainer_step = (clock.times[-1] - clock.times[warmup - 1]) / steps

    torch.manual_seed(0)
    model = build_model(arguments, tokenizer, 512).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [{key: torch.tensor(data["train"][i * 8:(i + 1) * 8][key]) for key in ("input_ids", "labels",
                                                                                       "attention_mask")}
               for i in range(steps + warmup)]
    bare_times = []
    for index, batch in enumerate(batches):
        start = time.perf_counter()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if index >= warmup:
            bare_times.append(time.perf_counter() - start)
    bare_step = sum(bare_times) / len(bare_times)
    print(f"trainer   LMTrainer step {trainer_step * 1e3:.1f} ms  bare loop step {bare_step * 1e3:.1f} ms "
          f"(median {statistics.median(bare_times) * 1e3:.1f})  overhead {trainer_step / bare_step - 1:+.1%}  "
          f"(width 128, 4 layers, batch 8 x 512, {steps} steps, threads={torch.get_num_threads()})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer, data = bench_pipeline(Path(folder), args.documents)
        bench_trainer(Path(folder), tokenizer, data, args.steps)


if __name__ == "__main__":
    main()
