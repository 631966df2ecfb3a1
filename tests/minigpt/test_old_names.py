"""Modules moved by the restructure (issue 18) keep their old import paths: each old name
gives the new module itself (monkeypatching either name changes both), with a
DeprecationWarning that names the new path."""
import importlib
import sys

import pytest

MOVED = {
    "minigpt.tokenizer_io": "minigpt.tokenizer.io",
    "minigpt.tokenizer_base": "minigpt.tokenizer.base",
    "minigpt.bpe_batch": "minigpt.tokenizer.fast",
    "minigpt.resume": "minigpt.train.resume",
    "minigpt.bench_tokenizer": "minigpt.bench.tokenizer",
    "minigpt.bench_torch": "minigpt.bench.torch_gpt",
    "minigpt.trace_html": "minigpt.tracing.html",
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_name_gives_the_new_module_with_a_warning(old):
    new = MOVED[old]
    if new.endswith("torch_gpt"):
        pytest.importorskip("torch")
    module = importlib.import_module(new)
    sys.modules.pop(old, None)                        # import the old name afresh
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        assert importlib.import_module(old) is module


def test_old_names_import_what_users_imported():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from minigpt.bpe_batch import PairRanks, bpe_many            # noqa: F401
        from minigpt.resume import resume_command, same_path         # noqa: F401
        from minigpt.tokenizer_base import EOT, TokenizerBase        # noqa: F401
        from minigpt.tokenizer_io import bytes_to_unicode, read_bpe  # noqa: F401
        from minigpt.trace_html import heatmap, render                # noqa: F401
    assert EOT == "<|endoftext|>"
