"""RuleTokenizer: exact round trips, invalid ids, text interface, save and AutoTokenizer reload."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from hf_diffusion_lm.rules import INVALID, RuleTokenizer, build_splits, consistency


@pytest.fixture(scope="module")
def samples():
    splits = build_splits(samples_per_rule=100, seed=3, heldout=None, test_samples_per_rule=0)
    return splits["train"].samples  # 4000 samples, 100 of every rule


@pytest.mark.parametrize("scheme, vocab, length", [("object", 971, 82), ("attribute", 33, 244)])
def test_every_sample_round_trips(samples, scheme, vocab, length):
    tok = RuleTokenizer(scheme=scheme)
    ids = tok.encode_samples(samples)
    assert tok.vocab_size == len(tok) == vocab and ids.shape == (len(samples), length)
    assert (ids[:, 0] == tok.bos_token_id).all() and ids[:, 1:].max() < tok.num_content_tokens
    assert (tok.decode_samples(ids) == samples).all()
    assert (tok.decode_samples(ids[:, 1:]) == samples).all()  # without BOS too
    assert tok.pad_token_id == tok.eos_token_id and len({tok.bos_token_id, tok.eos_token_id, tok.mask_token_id}) == 3


def test_token_order_is_row_panel_grid():
    sample = np.full((3, 3, 9, 3), -1)
    sample[1, 2, 5] = (3, 4, 9)  # row 1, panel 2, position 5 -> token 27 + 18 + 5 = 50
    ids = RuleTokenizer("object").encode_samples(sample, add_bos=False)
    assert np.flatnonzero(ids != 0).tolist() == [50] and ids[50] == 4 * 121 + 5 * 11 + 10
    ids = RuleTokenizer("attribute").encode_samples(sample, add_bos=False)
    assert ids[150:153].tolist() == [4, 8 + 5, 19 + 10] and ids[0:3].tolist() == [0, 8, 19]


def test_partly_empty_positions_round_trip():
    sample = np.full((3, 3, 9, 3), -1)
    sample[0, 0, 0] = (2, -1, 5)
    for scheme in ("object", "attribute"):
        tok = RuleTokenizer(scheme)
        assert (tok.decode_samples(tok.encode_samples(sample)) == sample).all()


def test_invalid_ids_decode_to_the_marker(samples):
    tok = RuleTokenizer("attribute")
    ids = tok.encode_samples(samples[:3])
    ids[0, 1] = tok.mask_token_id     # a leftover MASK in the first shape slot
    ids[1, 2] = ids[1, 1]             # a shape token in a size slot
    ids[2, 3] = 10_000                # an id outside the vocabulary
    decoded = tok.decode_samples(ids)
    assert decoded[0, 0, 0, 0, 0] == INVALID and decoded[1, 0, 0, 0, 1] == INVALID
    assert decoded[2, 0, 0, 0, 2] == INVALID
    assert consistency(decoded) == {"anyvalid": pytest.approx(6 / 9), "c3": 0, "c2": 1}
    garbage = np.random.default_rng(0).integers(-5, 2000, size=(50, 82))
    decoded = RuleTokenizer("object").decode_samples(garbage)
    assert (decoded == INVALID).any() and 0 <= consistency(decoded)["anyvalid"] < 0.2


def test_text_interface_matches_arrays(samples):
    tok = RuleTokenizer("object")
    ids = tok.encode_samples(samples[0])
    text = tok.decode(ids, skip_special_tokens=True)
    assert text.split()[0] in tok.get_vocab() and len(text.split()) == 81
    assert tok(text)["input_ids"] == ids.tolist()


@pytest.mark.parametrize("scheme", ["object", "attribute"])
def test_save_and_reload_with_auto_tokenizer(tmp_path, samples, scheme):
    RuleTokenizer(scheme=scheme).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(tok, RuleTokenizer) and tok.scheme == scheme
    assert (tok.decode_samples(tok.encode_samples(samples)) == samples).all()
    assert tok.mask_token == "<mask>" and tok.pad_token == "<eos>"


def test_bad_tokenizer_input():
    with pytest.raises(ValueError, match="scheme"):
        RuleTokenizer(scheme="pixels")
    tok = RuleTokenizer()
    with pytest.raises(ValueError, match="length 81 or 82"):
        tok.decode_samples(np.zeros((2, 80), int))
    with pytest.raises(ValueError, match="invalid marker"):
        tok.encode_samples(np.full((3, 3, 9, 3), INVALID))
    with pytest.raises(ValueError, match="unknown token"):
        tok("s9z9c9")
