"""Publish a checkpoint folder to the Hugging Face Hub in one commit.

    python recipes/publish.py outputs/default --repo_id me/tiny-mdlm --dry_run     # list what would be uploaded
    python recipes/publish.py outputs/default --repo_id me/tiny-mdlm [--private] [--revision BRANCH] [--create_pr]

Uploads the safetensors weights, config.json with `auto_map`, the model code (so the model loads with
`trust_remote_code=True` where hf_diffusion_lm is not installed), the generation config, the tokenizer, the model card
rebuilt for the repo id (README.md with its model-index, and `.eval_results/`), lm-eval results and pictures. Refuses a
folder without safetensors weights, pickle weights, a card whose metadata does not validate and a missing token (log
in with `hf auth login` or set HF_TOKEN). `recipes/train.py --push_to_hub --hub_model_id NAME` pushes at the end of
training through the Trainer instead.
"""

import argparse

from hf_diffusion_lm.publishing import publish


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint folder (the output_dir of recipes/train.py)")
    parser.add_argument("--repo_id", required=True, help="<user or organisation>/<name>")
    parser.add_argument("--private", action="store_true", help="create the repo private (no effect if it exists)")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--dry_run", action="store_true", help="list the files that would be uploaded; upload nothing")
    parser.add_argument("--commit_message", default=None)
    args = parser.parse_args(argv)
    paths, info = publish(args.checkpoint, args.repo_id, private=args.private, revision=args.revision,
                          create_pr=args.create_pr, dry_run=args.dry_run, commit_message=args.commit_message)
    verb = "Would upload" if args.dry_run else "Uploaded"
    print(f"{verb} {len(paths)} files to {args.repo_id}:\n" + "\n".join(f"  {path}" for path in paths))
    if info is not None:
        print(f"Commit: {info.commit_url}" + (f"\nPull request: {info.pr_url}" if info.pr_url else ""))
    return paths, info


if __name__ == "__main__":
    main()
