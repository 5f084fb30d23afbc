"""A tiny text corpus and trainer shared by the training tests."""

import numpy as np
from transformers import ByT5Tokenizer

from hf_diffusion_lm.training import (
    LMTrainer, LMTrainingConfig, ModelArguments, build_model, build_text_datasets, ensure_mask_token, load_text_dataset,
)


def write_corpus(folder, num_documents=60) -> str:
    """Repetitive little documents: easy to learn in a few dozen steps."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    words = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn", "rain falls on the roof"]
    lines = [" ".join(words[i] for i in rng.integers(0, len(words), size=3)) + "." for _ in range(num_documents)]
    path = folder / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def tiny_setup(folder, block_size=32, unique_tokens=2400, validation_tokens=256):
    tokenizer = ByT5Tokenizer()
    ensure_mask_token(tokenizer)
    corpus = load_text_dataset("text", [write_corpus(folder)])
    data = build_text_datasets(corpus, tokenizer, block_size, unique_tokens, validation_tokens)
    return tokenizer, data


def tiny_trainer(folder, model="masked_diffusion", num_orders=1, data=None, **overrides) -> LMTrainer:
    tokenizer, datasets = data or tiny_setup(folder)
    shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    arguments = ModelArguments(model=model, model_config={**shape, "num_orders": num_orders} if num_orders > 1 else shape)
    settings = dict(output_dir=str(folder / "out"), use_cpu=True, per_device_train_batch_size=8, max_steps=30,
                    learning_rate=3e-3, warmup_steps=0, logging_steps=1, report_to="none", save_strategy="no",
                    eval_strategy="no", seed=0, validation_repeats=2, per_device_eval_batch_size=4,
                    disable_tqdm=True)
    settings.update(overrides)
    config = LMTrainingConfig(**settings)
    from transformers import set_seed

    set_seed(config.seed)
    return LMTrainer(model=build_model(arguments, tokenizer, 32), args=config, train_dataset=datasets["train"],
                     eval_dataset=datasets["validation"], processing_class=tokenizer, unique_tokens=2400)


def logged_losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
