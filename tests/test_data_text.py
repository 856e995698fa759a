"""distill/data/text.py: text normalised the way GLUE SST-2 ships it (lower-cased, Penn Treebank tokens)."""
import pytest

from distill.data.text import clean_pretokenized, normalize


@pytest.mark.parametrize("raw,want", [
    ("It's great!", "it 's great !"),  # the README's example
    ("  Don't   go\tthere\n", "do n't go there"),  # contractions split, whitespace collapsed
    ("I can't; won't.", "i ca n't ; wo n't ."),  # Treebank's own splits of can't / won't
    ('He said "stop" twice.', 'he said " stop " twice .'),  # `` and '' mapped back to plain quotes
    ("A film (2001), rated 8/10.", "a film ( 2001 ) , rated 8/10 ."),
    ("ÉTÉ Naïve", "été naïve"),
    ("", ""),
    ("  \t ", ""),
    (123, "123"),  # anything is read as text
])
def test_normalize(raw, want):
    assert normalize(raw) == want


def test_normalize_is_idempotent_on_its_output():
    once = normalize('A "charming", often-affecting journey... isn\'t it?')
    assert normalize(once) == once
    assert normalize("[MASK]") == "[ mask ]"  # raw input is never taken for the augment stage's [MASK] word


def test_clean_pretokenized_only_collapses_whitespace():
    assert clean_pretokenized("  It 's   A\tgem \n") == "It 's A gem"  # case and tokens untouched (SST-2 files)
    assert clean_pretokenized("") == ""
