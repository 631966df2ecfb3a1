"""``minigrad.__version__``: the installed distribution's version (setup.cfg's, through the
package metadata, importlib.metadata), else the version written in setup.cfg beside the
package (a source checkout that was never installed), else "0+unknown". Looked up when
first asked for, so that importing minigrad does not read the metadata."""
from __future__ import annotations

import configparser
import functools
from pathlib import Path

DISTRIBUTION = "minigrad-minigpt"     # setup.cfg [metadata] name


@functools.lru_cache(maxsize=None)
def version() -> str:
    """The version string, read once."""
    from importlib import metadata
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    setup_cfg = Path(__file__).resolve().parent.parent / "setup.cfg"
    cfg = configparser.ConfigParser()
    try:
        cfg.read(setup_cfg, encoding="utf-8")
        return cfg["metadata"]["version"]
    except (configparser.Error, KeyError, UnicodeDecodeError):
        return "0+unknown"


def __getattr__(name):
    """Module ``__getattr__`` for the package: only ``__version__`` is computed."""
    if name == "__version__":
        return version()
    from .missing import missing
    raise missing("minigrad", name)
