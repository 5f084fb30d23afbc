"""A transformers tokenizer for rule samples, with the authors' token order and two vocabularies.

Order (both schemes): row -> panel -> grid row -> grid column, i.e. position 27 R + 9 p + 3 h + w.
- scheme "object": one token per object position, the joint (shape, size, color) triple: 8 x 11 x 11 =
  968 content tokens (each attribute shifted by one so that -1 = empty is 0), 81 tokens per sample.
  Token id = 121 (shape + 1) + 11 (size + 1) + (color + 1); token text e.g. "s3z5c7", empty "s_z_c_".
- scheme "attribute": three tokens per position, shape then size then color: 8 + 11 + 11 = 30 content
  tokens ("s_", "s0".."s6", "z_", "z0".."z9", "c_", "c0".."c9"), 243 tokens per sample. The authors'
  models embedded and predicted the attributes separately; this approximates it for a standard LM.
Special tokens follow the content tokens: <bos> (prepended, like the authors' context token, so
sequences are 82 / 244 long), <eos> (also the padding token) and <mask>.

Decoding never fails on model output: a token that means nothing at its place (a special token, an
attribute token in another attribute's slot, an id outside the vocabulary) decodes to INVALID (-2),
which the checker counts as an invalid row.
"""

import numpy as np
from transformers import PreTrainedTokenizer

from .checker import INVALID, check_rows
from .instances import ATTRIBUTE_VALUES

SCHEMES = ("object", "attribute")
_LEVELS = tuple(m + 1 for m in ATTRIBUTE_VALUES)  # 8, 11, 11 token values per attribute (0 = empty)
_PREFIXES = ("s", "z", "c")  # shape, size, color


def _level_text(attribute: int, level: int) -> str:
    return _PREFIXES[attribute] + ("_" if level == 0 else str(level - 1))


def content_tokens(scheme: str) -> list[str]:
    """The content vocabulary of a scheme, in id order."""
    if scheme == "object":
        return [_level_text(0, s) + _level_text(1, z) + _level_text(2, c)
                for s in range(_LEVELS[0]) for z in range(_LEVELS[1]) for c in range(_LEVELS[2])]
    if scheme == "attribute":
        return [_level_text(a, level) for a in range(3) for level in range(_LEVELS[a])]
    raise ValueError(f"unknown tokenization scheme {scheme!r}: choose one of {SCHEMES}")


class RuleTokenizer(PreTrainedTokenizer):
    """Tokenizer for rule samples [3 rows, 3 panels, 9 positions, 3 attributes].

    Use encode_samples / decode_samples for arrays; the text interface (tokens separated by spaces)
    works too, so the usual `tokenizer(text)`, `decode`, `save_pretrained` and
    `AutoTokenizer.from_pretrained` all apply.

    Example:
        >>> tok = RuleTokenizer(scheme="attribute")
        >>> ids = tok.encode_samples(samples)  # [N, 244], BOS first
        >>> (tok.decode_samples(ids) == samples).all()
    """

    vocab_files_names = {}  # the vocabulary follows from the scheme; tokenizer_config.json holds everything
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, scheme: str = "object", bos_token="<bos>", eos_token="<eos>", pad_token="<eos>",
                 mask_token="<mask>", **kwargs):
        self.scheme = scheme
        tokens = content_tokens(scheme) + [bos_token, eos_token, mask_token]
        self._id_to_token = tokens
        self._token_to_id = {t: i for i, t in enumerate(tokens)}
        self.num_content_tokens = len(tokens) - 3
        self.tokens_per_position = 1 if scheme == "object" else 3
        kwargs.setdefault("special_tokens_pattern", "bos")
        super().__init__(scheme=scheme, bos_token=bos_token, eos_token=eos_token, pad_token=pad_token,
                         mask_token=mask_token, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    @property
    def sample_length(self) -> int:
        """Content tokens per sample: 81 (object) or 243 (attribute)."""
        return 81 * self.tokens_per_position

    def get_vocab(self) -> dict[str, int]:
        return dict(self._token_to_id)

    def _tokenize(self, text, **kwargs) -> list[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self._token_to_id:
            raise ValueError(f"unknown token {token!r} for the {self.scheme!r} scheme")
        return self._token_to_id[token]

    def _convert_id_to_token(self, index: int) -> str:
        if not 0 <= index < len(self._id_to_token):
            raise ValueError(f"token id {index} out of range 0..{len(self._id_to_token) - 1}")
        return self._id_to_token[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        return ()

    def encode_samples(self, samples, add_bos: bool = True) -> np.ndarray:
        """Token ids [..., sample_length (+1 with BOS)] of samples [..., 3, 3, 9, 3] (values -1..M-1)."""
        samples = check_rows(samples, (3, 3, 9, 3), "samples")
        if (samples == INVALID).any():
            raise ValueError(f"samples hold the invalid marker {INVALID}; only -1 (empty) and values encode")
        levels = samples.reshape(*samples.shape[:-4], 81, 3) + 1  # row -> panel -> grid order is C order
        if self.scheme == "object":
            ids = (levels[..., 0] * _LEVELS[1] + levels[..., 1]) * _LEVELS[2] + levels[..., 2]
        else:
            ids = (levels + np.cumsum((0,) + _LEVELS[:2])).reshape(*levels.shape[:-2], 243)
        if add_bos:
            ids = np.concatenate([np.full((*ids.shape[:-1], 1), self.bos_token_id), ids], -1)
        return ids

    def decode_samples(self, ids) -> np.ndarray:
        """Samples [..., 3, 3, 9, 3] of token ids [..., sample_length], or [..., sample_length + 1] whose
        first token (BOS or a context token) is dropped. Ids that mean nothing in their slot give INVALID."""
        ids = np.asarray(ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
        if ids.ndim == 0 or ids.shape[-1] not in (self.sample_length, self.sample_length + 1):
            raise ValueError(f"token ids must have length {self.sample_length} or {self.sample_length + 1} "
                             f"(with BOS) for the {self.scheme!r} scheme, got shape {list(ids.shape)}")
        ids = ids[..., -self.sample_length:].astype(np.int64)
        if self.scheme == "object":
            valid = (ids >= 0) & (ids < self.num_content_tokens)
            levels = np.stack([ids // (_LEVELS[1] * _LEVELS[2]), ids // _LEVELS[2] % _LEVELS[1], ids % _LEVELS[2]], -1)
            values = np.where(valid[..., None], levels - 1, INVALID)
        else:
            ids = ids.reshape(*ids.shape[:-1], 81, 3)
            levels = ids - np.cumsum((0,) + _LEVELS[:2])  # each slot's own attribute range starts at 0
            values = np.where((levels >= 0) & (levels < _LEVELS), levels - 1, INVALID)
        return values.reshape(*values.shape[:-2], 3, 3, 9, 3).astype(np.int8)
