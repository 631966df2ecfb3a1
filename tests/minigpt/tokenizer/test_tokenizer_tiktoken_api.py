"""tiktoken's names on both tokenizers: closed-form cases always, tiktoken itself as the oracle
where it is installed (built from our own ranks with ``tiktoken.Encoding``: no download)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.corpus import builtin_corpus
from minigpt.errors import TokenizerError
from minigpt.tokenizer import EOT, CharTokenizer, Tokenizer

FIM = "<|fim|>"
TEXT = "x<|endoftext|>y<|fim|>z"          # EOT at index 1, FIM at index 15


@pytest.fixture(scope="module")
def plain():
    """No merges: every ordinary byte is its own id, so encodings are written down by hand."""
    return Tokenizer(pattern="gpt2", special_tokens={EOT: 256, FIM: 257})


@pytest.fixture(scope="module")
def trained():
    return Tokenizer.train(builtin_corpus()[:20_000], 256 + 200 + 2, pattern="gpt4",
                           special_tokens=[EOT, FIM])


def _bytes(s: str) -> list[int]:
    return list(s.encode("utf-8"))


# ----------------------------------------------------------------------------- closed form

def test_sizes_and_names(plain):
    assert plain.n_vocab == plain.vocab_size == 258 and plain.max_token_value == 257
    assert plain.special_tokens_set == {EOT, FIM} and plain.eot_token == 256
    assert [i for i in range(258) if plain.is_special_token(i)] == [256, 257]
    assert not plain.is_special_token(True)
    gap = Tokenizer(special_tokens={EOT: 1000})          # ids 256..999 are unused
    assert gap.n_vocab == 1001 and gap.max_token_value == 1000
    assert Tokenizer().eot_token is None and Tokenizer().special_tokens_set == set()


@pytest.mark.parametrize("kwargs, want", [
    (dict(allowed_special="all"), [120, 256, 121, 257, 122]),
    (dict(allowed_special={EOT, FIM}), [120, 256, 121, 257, 122]),
    (dict(allowed_special=[EOT, FIM]), [120, 256, 121, 257, 122]),
    (dict(allowed_special={EOT}, disallowed_special=()), [120, 256, 121] + _bytes(FIM) + [122]),
    (dict(allowed_special={FIM}, disallowed_special=set()), _bytes("x" + EOT + "y") + [257, 122]),
    (dict(disallowed_special=()), _bytes(TEXT)),
    (dict(allowed_special="none"), _bytes(TEXT)),                     # minbpe's spelling
    (dict(allowed_special="all", disallowed_special=()), [120, 256, 121, 257, 122]),
])
def test_encode_special_rules(plain, kwargs, want):
    assert plain.encode(TEXT, **kwargs) == want
    assert plain.encode_batch([TEXT, "ab"], **kwargs) == [want, [97, 98]]


@pytest.mark.parametrize("kwargs, found", [
    (dict(), f"the special token '{EOT}' at index 1"),
    (dict(allowed_special="none_raise"), f"the special token '{EOT}' at index 1"),
    (dict(allowed_special={EOT}), f"the special token '{FIM}' at index 15"),
    (dict(disallowed_special={FIM}), f"the special token '{FIM}' at index 15"),
    (dict(allowed_special="all", disallowed_special={EOT}),
     f"the special token '{EOT}' at index 1, which is disallowed; leave it out of disallowed_special"),
    (dict(disallowed_special={"y"}, allowed_special="all"), "the string 'y' at index 14"),
    (dict(allowed_special="none", disallowed_special=["z"]), "the string 'z' at index 22"),
])
def test_encode_disallowed_raises(plain, kwargs, found):
    with pytest.raises(TokenizerError, match=r"encode: the text contains " + _re(found)):
        plain.encode(TEXT, **kwargs)
    with pytest.raises(TokenizerError, match=r"encode_batch: the text contains " + _re(found)):
        plain.encode_batch(["ab", TEXT], **kwargs)


def _re(s: str) -> str:
    import re
    return re.escape(s)


def test_disallowed_special_only_raises_for_what_it_names(plain):
    # EOT is neither allowed nor disallowed: ordinary text, as in tiktoken
    assert plain.encode(EOT, disallowed_special={FIM}) == _bytes(EOT)
    assert plain.encode("ab", disallowed_special={"zz"}) == [97, 98]


def test_encode_with_merges_closed_form():
    tok = Tokenizer.train("aaabdaaabac", 256 + 3 + 2, pattern=None, special_tokens=[EOT, FIM])
    assert tok.special_tokens == {EOT: 259, FIM: 260}
    assert tok.encode("aaab" + EOT + "ac", allowed_special="all") == [258, 259, 97, 99]
    assert tok.encode_ordinary("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.encode_ordinary_batch(["aaab", "ac"]) == [[258], [97, 99]]
    assert tok.decode_single_token_bytes(256) == b"aa"
    assert tok.decode_tokens_bytes([258, 259, 97]) == [b"aaab", EOT.encode(), b"a"]
    assert tok.decode_bytes([258, 260]) == b"aaab" + FIM.encode()
    assert tok.decode_batch([[258], [97, 99]]) == ["aaab", "ac"]
    assert tok.decode_single_token_bytes(np.int64(258)) == b"aaab"
    assert tok.token_bytes(257) == b"ab"                 # the older name


def test_existing_calls_keep_working(plain):
    assert plain.encode(TEXT, "all") == plain.encode(TEXT, allowed_special="all")
    assert plain.encode_batch([TEXT], "all") == [plain.encode(TEXT, allowed_special="all")]
    assert plain.encode("plain text") == plain.encode_ordinary("plain text") == _bytes("plain text")


def test_bad_arguments(plain):
    cases = [
        (dict(allowed_special={"<|nope|>"}), r"allowed_special names unknown special tokens"),
        (dict(allowed_special="some"), r"allowed_special must be 'all', a set"),
        (dict(allowed_special=EOT), r"allowed_special must be 'all', a set"),
        (dict(allowed_special=7), r"allowed_special must be 'all' or a set"),
        (dict(allowed_special={1}), r"allowed_special must hold non-empty str, got 1"),
        (dict(disallowed_special="none"), r"disallowed_special must be 'all' or a set"),
        (dict(disallowed_special={""}), r"disallowed_special must hold non-empty str"),
        (dict(disallowed_special=None), r"disallowed_special must be 'all' or a set"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(TokenizerError, match=msg):
            plain.encode("x", **kwargs)
    with pytest.raises(TokenizerError, match=r"encode_batch: text must be a list of str, got "
                                             r"str; for one string call encode"):
        plain.encode_batch("abc")
    with pytest.raises(TokenizerError, match=r"encode_batch: text\[1\] must be str, got int"):
        plain.encode_batch(["a", 3])
    with pytest.raises(TokenizerError, match=r"encode_ordinary_batch: text must be a list"):
        plain.encode_ordinary_batch(b"abc")
    for n in (0, -1, 2.0, True):
        with pytest.raises(TokenizerError, match=r"num_threads must be a positive int"):
            plain.encode_batch(["a"], num_threads=n)
    for bad in (258, 10 ** 9, -1, True, "a", 1.0):
        with pytest.raises(TokenizerError, match=r"decode_single_token_bytes: token must be an "
                                                 r"int id of the vocabulary \(0\.\.257\)"):
            plain.decode_single_token_bytes(bad)
    with pytest.raises(TokenizerError, match=r"decode_tokens_bytes: tokens must be an iterable"):
        plain.decode_tokens_bytes("ab")
    with pytest.raises(TokenizerError, match=r"\(0\.\.1000\), got 500"):
        Tokenizer(special_tokens={EOT: 1000}).decode_single_token_bytes(500)


# ----------------------------------------------------------------------------- CharTokenizer

def test_char_tokenizer_names():
    ct = CharTokenizer.train("hello é")
    chars = sorted(set("hello é"))
    assert ct.n_vocab == ct.vocab_size == len(chars) and ct.max_token_value == len(chars) - 1
    assert ct.special_tokens_set == set() and ct.eot_token is None
    assert not any(ct.is_special_token(i) for i in range(ct.n_vocab))
    ids = [chars.index(c) for c in "hole é"]
    for kwargs in ({}, dict(allowed_special="all"), dict(disallowed_special=()),
                   dict(allowed_special="none"), dict(allowed_special=set())):
        assert ct.encode("hole é", **kwargs) == ids
    assert ct.encode_ordinary("hole é") == ids
    assert ct.encode_batch(["hole é", "h"]) == ct.encode_ordinary_batch(["hole é", "h"]) == \
        [ids, [chars.index("h")]]
    assert ct.decode_single_token_bytes(chars.index("é")) == "é".encode()
    assert ct.decode_tokens_bytes(ids) == [c.encode() for c in "hole é"]
    assert ct.decode_bytes(ids) == "hole é".encode()
    assert ct.decode_batch([ids, []]) == ["hole é", ""]
    # tiktoken's meaning of disallowed_special: a named string found in the text raises
    with pytest.raises(TokenizerError, match=r"the string 'l' at index 2"):
        ct.encode("hole", disallowed_special={"l"})
    with pytest.raises(TokenizerError, match=r"unknown special tokens \['<\|endoftext\|>'\]; "
                                             r"known: \[\]"):
        ct.encode("hole", allowed_special={EOT})
    with pytest.raises(TokenizerError, match=r"token must be an int id of the vocabulary"):
        ct.decode_single_token_bytes(len(chars))
    with pytest.raises(TokenizerError, match=r"character 'z' \(U\+007A\) at index 1"):
        ct.encode_batch(["h", "hz"])


# ----------------------------------------------------------------------------- tiktoken oracle

def _tiktoken(tok):
    tiktoken = pytest.importorskip("tiktoken")
    return tiktoken.Encoding("minigpt-test", pat_str=tok.pattern,
                             mergeable_ranks=tok.mergeable_ranks(),
                             special_tokens=dict(tok.special_tokens))


def _both(ours, theirs):
    """Run both; return ("ok", result) or ("raises", None), checking our error is a
    TokenizerError where tiktoken raises ValueError."""
    try:
        want = ("ok", theirs())
    except ValueError:
        want = ("raises", None)
    try:
        got = ("ok", ours())
    except TokenizerError:
        got = ("raises", None)
    return got, want


SPECIAL_CHOICES = [  # (allowed_special, disallowed_special) in tiktoken's own spelling
    (set(), "all"), ("all", "all"), ({EOT}, "all"), ({FIM}, "all"), ({EOT, FIM}, "all"),
    (set(), ()), ({EOT}, ()), ("all", ()), (set(), {FIM}), ({EOT}, {FIM}), ({EOT}, {EOT}),
    ("all", {"b"}), (set(), {"b", "é"}), ({FIM}, frozenset({EOT})), (frozenset({EOT}), [FIM]),
]


@pytest.mark.parametrize("allowed, disallowed", SPECIAL_CHOICES)
def test_encode_matches_tiktoken(trained, allowed, disallowed):
    enc = _tiktoken(trained)
    for text in (TEXT, "To be, or not" + EOT + FIM + " to bé", "plain", "", EOT, "<|endoftext"):
        got, want = _both(
            lambda: trained.encode(text, allowed_special=allowed, disallowed_special=disallowed),
            lambda: enc.encode(text, allowed_special=allowed, disallowed_special=disallowed))
        assert got == want, (text, allowed, disallowed)
    texts = [TEXT, "hello world", EOT]
    got, want = _both(
        lambda: trained.encode_batch(texts, allowed_special=allowed,
                                     disallowed_special=disallowed, num_threads=2),
        lambda: enc.encode_batch(texts, allowed_special=allowed,
                                 disallowed_special=disallowed, num_threads=2))
    assert got == want


PIECES = ["a", " b", "é", "\n", " ", EOT, FIM, "<|", "|>", "endoftext", "😀", "To be", "'s", "12"]


@settings(deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=12),
       choice=st.sampled_from(SPECIAL_CHOICES))
def test_encode_matches_tiktoken_hypothesis(trained, pieces, choice):
    enc = _tiktoken(trained)
    text, (allowed, disallowed) = "".join(pieces), choice
    got, want = _both(
        lambda: trained.encode(text, allowed_special=allowed, disallowed_special=disallowed),
        lambda: enc.encode(text, allowed_special=allowed, disallowed_special=disallowed))
    assert got == want
    assert trained.encode_ordinary(text) == enc.encode_ordinary(text)


def test_names_match_tiktoken(trained):
    enc = _tiktoken(trained)
    assert (trained.n_vocab, trained.max_token_value) == (enc.n_vocab, enc.max_token_value)
    assert trained.special_tokens_set == enc.special_tokens_set
    assert trained.eot_token == enc.eot_token
    ids = range(trained.n_vocab)
    assert [trained.decode_single_token_bytes(i) for i in ids] == \
        [enc.decode_single_token_bytes(i) for i in ids]
    assert [trained.is_special_token(i) for i in ids] == [enc.is_special_token(i) for i in ids]
    ids = enc.encode(TEXT + " héllo wörld 😀", allowed_special="all")
    assert trained.decode_tokens_bytes(ids) == enc.decode_tokens_bytes(ids)
    assert trained.decode_bytes(ids) == enc.decode_bytes(ids)
    batch = [ids, ids[:3], []]
    assert trained.decode_batch(batch) == enc.decode_batch(batch)
    texts = ["To be, or not to be", TEXT, "é😀"]
    assert trained.encode_ordinary_batch(texts) == enc.encode_ordinary_batch(texts)
    gap = Tokenizer(pattern="gpt2", special_tokens={EOT: 1000})
    enc_gap = _tiktoken(gap)
    assert (gap.n_vocab, gap.max_token_value) == (enc_gap.n_vocab, enc_gap.max_token_value)


def test_documented_differences_from_tiktoken(trained):
    """Where tiktoken would silently ignore or mis-read an argument, we raise instead."""
    enc = _tiktoken(trained)
    # a misspelt allowed name: tiktoken ignores it (and here encodes plain text)
    assert enc.encode("x", allowed_special={"<|endoftxt|>"}) == trained.encode("x")
    with pytest.raises(TokenizerError, match="unknown special tokens"):
        trained.encode("x", allowed_special={"<|endoftxt|>"})
    # a bare string as disallowed_special: tiktoken reads it as a set of characters
    with pytest.raises(ValueError):
        enc.encode("a plain text", disallowed_special="plain")
    with pytest.raises(TokenizerError, match="disallowed_special must be 'all' or a set"):
        trained.encode("a plain text", disallowed_special="plain")
    # no <|endoftext|>: tiktoken raises KeyError, we say None
    no_eot = Tokenizer(pattern="gpt2", special_tokens={FIM: 256})
    with pytest.raises(KeyError):
        _tiktoken(no_eot).eot_token
    assert no_eot.eot_token is None
