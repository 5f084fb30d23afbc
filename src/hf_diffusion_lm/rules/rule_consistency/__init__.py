"""The rule-consistency metric as an `evaluate` module; load it with
`evaluate.load(hf_diffusion_lm.rules.hf.metric_path())`. This file only makes the folder ship with the package."""
