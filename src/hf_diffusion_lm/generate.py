"""Print samples from a saved model: `python -m hf_diffusion_lm.generate --model PATH --prompt "..."`.

The tokenizer is loaded from the model folder; without one the prompt is read as space-separated token ids. The
tokenizer's mask token (or, without a tokenizer, the MASK id) inside the prompt marks holes to fill. `--show-steps`
prints the diffusion canvas after every step, MASK positions shown as `_`.
"""

import argparse

import torch
from transformers import AutoConfig, AutoTokenizer

import hf_diffusion_lm.rules  # noqa: F401  (registers the rule tokenizer)
from hf_diffusion_lm.families import family_of, is_diffusion_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="folder or Hub id of a saved model")
    parser.add_argument("--prompt", default="", help="prompt text (token ids separated by spaces without a tokenizer)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--do-sample", action="store_true", help="sample tokens instead of taking the most likely")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="diffusion: network calls (default: one per token)")
    parser.add_argument("--block-length", type=int, default=None, help="diffusion: semi-autoregressive block size")
    parser.add_argument("--remasking", default=None, help="diffusion: random, low_confidence, margin or entropy")
    parser.add_argument("--block-cache", default=None, help="diffusion: none, prefix or dual")
    parser.add_argument("--decoding-order", default=None, help="permuted causal: random or left-to-right (any order)")
    parser.add_argument("--mask-token-id", type=int, default=None,
                        help="permuted causal: the id marking holes (default: the tokenizer's mask token)")
    parser.add_argument("--show-steps", action="store_true", help="diffusion: print the canvas after every step")
    return parser.parse_args(argv)


def load(path):
    model = family_of(AutoConfig.from_pretrained(path)).auto_class.from_pretrained(path).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError):
        tokenizer = None
    return model, tokenizer


def encode(prompt, tokenizer):
    if tokenizer is None:
        return torch.tensor([[int(token) for token in prompt.split()]], dtype=torch.long)
    return tokenizer(prompt, return_tensors="pt", add_special_tokens=True).input_ids


def decode(ids, tokenizer, mask_id):
    ids = ids.tolist()
    if tokenizer is None:
        return " ".join("_" if token == mask_id else str(token) for token in ids)
    return " ".join("_" if token == mask_id else tokenizer.decode([token]) for token in ids)


def main(argv=None):
    args = parse_args(argv)
    model, tokenizer = load(args.model)
    is_diffusion = is_diffusion_model(model)
    if is_diffusion:
        mask_id = model.config.mask_token_id
    elif args.mask_token_id is not None or tokenizer is None:
        mask_id = args.mask_token_id
    else:
        mask_id = tokenizer.mask_token_id
    input_ids = encode(args.prompt, tokenizer)
    options = dict(max_new_tokens=args.max_new_tokens or None, num_return_sequences=args.num_samples,
                   do_sample=args.do_sample, temperature=args.temperature)
    if is_diffusion:
        diffusion = dict(steps=args.steps, block_length=args.block_length, remasking=args.remasking,
                         block_cache=args.block_cache, seed=args.seed, return_dict_in_generate=True)
        options.update({key: value for key, value in diffusion.items() if value is not None})
    else:
        torch.manual_seed(args.seed)
        if args.decoding_order is not None or (mask_id is not None and bool((input_ids == mask_id).any())):
            options.update(mask_token_id=mask_id, decoding_order=args.decoding_order, seed=args.seed)
    options = {key: value for key, value in options.items() if value is not None}
    output = model.generate(input_ids, **options)
    sequences = output.sequences if hasattr(output, "sequences") else output

    for index, sequence in enumerate(sequences):
        if args.show_steps and is_diffusion:
            for step, canvas in enumerate(output.history[:, index]):
                print(f"[sample {index} step {step:3d}] {decode(canvas, tokenizer, mask_id)}")
        print(f"[sample {index}] {decode(sequence, tokenizer, mask_id)}")


if __name__ == "__main__":
    main()
