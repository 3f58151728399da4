"""The default vocabulary: one word per token, every word the prompt templates and the finding
schema can produce (so every value of every field is a single token). Apart from the tokenizer
wrapper because it needs the schema grammar, which itself decodes with a tokenizer."""

from __future__ import annotations

import re

from tokenizers import Tokenizer, models, pre_tokenizers

from reporter.contracts.findings import LEVELS
from reporter.vlm.decoding import NA, level_grammar, study_grammar, value_text
from reporter.vlm.prompt import PromptTemplate
from reporter.vlm.tokenizer import SPECIALS, UNK, SpineTokenizer


def schema_words() -> set[str]:
    """Every word a finding sequence can contain: slot names, values, level names."""
    words: set[str] = {NA}
    for grammar in (level_grammar(), study_grammar()):
        for slot in grammar.slots:
            words.add(slot.name)
            words.update(value_text(v) for v in slot.values)
    for level in LEVELS:
        words.update(re.findall(r"\w+|[^\w\s]+", level))
    return words


def build_default_tokenizer(template: PromptTemplate) -> SpineTokenizer:
    words = sorted(schema_words() | template.words())
    vocab = {t: i for i, t in enumerate([*SPECIALS, *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Whitespace splits on \w+|[^\w\s]+: "paracentral_left" stays one word, "L4-L5" is 3.
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIALS))
    return SpineTokenizer(tok)
