"""minigpt.corpus: the built-in corpus ships inside the package, as package data."""
import configparser
import fnmatch
from pathlib import Path

import minigpt
from minigpt.corpus import builtin_corpus

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_corpus_is_the_file_in_assets():
    path = Path(minigpt.__file__).parent / "assets" / "corpus.txt"
    text = builtin_corpus()
    assert text == path.read_text(encoding="utf-8")
    assert text.startswith("First Citizen:") and 300_000 < len(text) < 400_000
    assert text.endswith("\n")


def test_setup_cfg_ships_the_corpus_as_package_data():
    """The package_data globs of setup.cfg match the corpus file (else a wheel lacks it)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    globs = cfg["options.package_data"]["minigpt"].split()
    assert any(fnmatch.fnmatch("assets/corpus.txt", g) for g in globs), globs
    assert not (ROOT / "minigpt" / "data").exists()   # no data/ folder beside data.py
