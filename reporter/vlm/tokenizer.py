"""The decoder's tokenizer: built with the `tokenizers` library and saved with the model.

The default vocabulary is one word per token (WordLevel): every word the prompt templates and the
finding schema can produce, so every value of every field is a single token and the levels of a
study decode in lockstep. Any `tokenizers` tokenizer works (a byte-level BPE trained locally, the
tokenizer.json of a local Hugging Face model): the constrained decoder handles values that span
several tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from reporter.errors import ModelFileError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
_EOS_CANDIDATES = (EOS, "</s>", "<|endoftext|>", "<|im_end|>", "<|end_of_text|>")


class SpineTokenizer:
    """A thin wrapper: encode text pieces without special tokens, know pad and end ids."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        eos = next((t for t in _EOS_CANDIDATES if tokenizer.token_to_id(t) is not None), None)
        if eos is None:
            tokenizer.add_special_tokens([EOS])
            eos = EOS
        self.eos_id: int = tokenizer.token_to_id(eos)
        pad = tokenizer.token_to_id(PAD)
        self.pad_id: int = self.eos_id if pad is None else pad
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return list(self._cache[text])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def save(self, path: Path) -> None:
        self.tokenizer.save(str(path))

    @classmethod
    def load(cls, path: Path) -> SpineTokenizer:
        if not path.is_file():
            raise ModelFileError(f"tokenizer file {path} is missing")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise ModelFileError(f"tokenizer file {path} cannot be read: {exc}") from None


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int = 320) -> SpineTokenizer:
    """A byte-level BPE trained here on `texts` (no download): values may span several tokens."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return SpineTokenizer(tok)
