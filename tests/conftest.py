import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionConfig, PermutedCausalConfig


TINY = dict(
    vocab_size=40,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def tiny_diffusion_config(**overrides) -> MaskedDiffusionConfig:
    # A larger initializer makes the random network actually use its context, so masking and ordering show up.
    return MaskedDiffusionConfig(**{**TINY, "mask_token_id": 39, "initializer_range": 0.3, **overrides})


def tiny_causal_config(**overrides) -> PermutedCausalConfig:
    return PermutedCausalConfig(**{**TINY, "initializer_range": 0.3, **overrides})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_recipe(name: str):
    """recipes/<name>.py as a module, without putting recipes/ on sys.path: recipes/evaluate.py would then shadow
    Hugging Face's `evaluate` library for every later import in the test session."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"recipe_{name}", Path(__file__).parents[1] / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_without_package(script: str, tmp_path, env: dict | None = None) -> str:
    """Run `script` in a fresh interpreter where `import hf_diffusion_lm` fails, as for a Hub user without the
    package; return its stdout (the test fails with its stderr when it fails). `env` adds or replaces variables."""
    import subprocess
    import sys
    import textwrap

    blocker = textwrap.dedent("""
        import sys
        class BlockPackage:
            def find_spec(self, name, path=None, target=None):
                if name == "hf_diffusion_lm" or name.startswith("hf_diffusion_lm."):
                    raise ImportError("hf_diffusion_lm is blocked in this test")
        sys.meta_path.insert(0, BlockPackage())
    """)
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           **(env or {})}
    result = subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(script)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from a second intra-op thread and lose a lot (10x and more) when another process holds
    a core: `pytestmark = pytest.mark.usefixtures("one_thread")` in such a test file."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def interrupt_after_first_checkpoint(run_dir, finished_files):
    """Make a finished 4-step run look killed right after its checkpoint at step 2: no final model, no final files."""
    import shutil

    for name in (*finished_files, "model.safetensors"):
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "checkpoint-4")
