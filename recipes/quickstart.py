"""Build both model families at one size on the abstract-rule data (generated here, nothing downloaded), train each
for a few AdamW steps and print their losses.

This is the stand-in for `recipes/train.py` until the Trainer lands: it shows the two objectives side by side on the
same backbone. Runs in about a minute on two CPU cores.

    python recipes/quickstart.py [--steps 30] [--rules 0 3 30 37]
"""

import argparse

import torch

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM
from hf_diffusion_lm.rules import RULE_NAMES, RuleTokenizer, build_splits


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples-per-rule", type=int, default=200)
    parser.add_argument("--rules", type=int, nargs="+", default=[0, 3, 30, 37], help="rule ids to train on")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    tokenizer = RuleTokenizer(scheme="attribute")
    excluded = [rule for rule in range(len(RULE_NAMES)) if rule not in args.rules]
    splits = build_splits(samples_per_rule=args.samples_per_rule, seed=args.seed, heldout=excluded,
                          test_samples_per_rule=10)
    train_ids = torch.as_tensor(tokenizer.encode_samples(splits["train"].samples), dtype=torch.long)
    print(f"rules {[RULE_NAMES[r] for r in args.rules]}: {len(train_ids)} samples of {train_ids.shape[1]} tokens")

    shape = dict(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=320, num_hidden_layers=4,
                 num_attention_heads=4, max_position_embeddings=train_ids.shape[1], bos_token_id=tokenizer.bos_token_id,
                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    models = {
        "MaskedDiffusionForLM": MaskedDiffusionForLM(MaskedDiffusionConfig(**shape, mask_token_id=tokenizer.mask_token_id)),
        "PermutedCausalLM N=1": PermutedCausalLM(PermutedCausalConfig(**shape)),
        "PermutedCausalLM N=4": PermutedCausalLM(PermutedCausalConfig(**shape, num_orders=4)),
    }
    generator = torch.Generator().manual_seed(args.seed)
    batches = [train_ids[torch.randint(len(train_ids), (args.batch_size,), generator=generator)]
               for _ in range(args.steps)]
    for name, model in models.items():
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
        model.train()
        losses = []
        for batch in batches:
            # The BOS token is context, never a target: label -100 keeps it clean and unscored for diffusion.
            labels = batch.clone()
            if isinstance(model, MaskedDiffusionForLM):
                labels[:, 0] = -100
            loss = model(input_ids=batch, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        parameters = sum(p.numel() for p in model.parameters())
        print(f"{name:22s} {parameters:,} parameters  loss (nats/token) first step {losses[0]:.3f}  "
              f"mean of last 5 steps {sum(losses[-5:]) / 5:.3f}")


if __name__ == "__main__":
    main()
