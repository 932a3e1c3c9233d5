"""Everything that talks to Kaggle goes through here (issue #5 fills it in with the `kaggle` client).

Importing the `kaggle` package authenticates at import time and prints a banner when no
credentials exist, so this module checks for credentials itself before it ever imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PainterError

COMPETITION = "gan-getting-started"
COMPETITION_URL = f"https://www.kaggle.com/competitions/{COMPETITION}"


def credential_sources() -> list[str]:
    """Where Kaggle credentials were found (names only: never the secrets themselves)."""
    found = []
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        found.append("KAGGLE_USERNAME/KAGGLE_KEY")
    if os.environ.get("KAGGLE_API_TOKEN"):
        found.append("KAGGLE_API_TOKEN")
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    for name in ("kaggle.json", "access_token"):
        if (config_dir / name).is_file():
            found.append(str(config_dir / name))
    return found


def download_competition(dest: Path) -> None:
    found = credential_sources()
    credentials = (f"found: {', '.join(found)}" if found else
                   "none found: put kaggle.json (from https://www.kaggle.com/settings, 'Create New Token') "
                   "in ~/.kaggle/, or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN")
    raise PainterError(
        "downloading from Kaggle is not available in this version of painter yet. It will need:\n"
        f"  1. Kaggle credentials ({credentials});\n"
        f"  2. the competition's rules accepted at {COMPETITION_URL}/rules.\n"
        f"Until then: download the data from {COMPETITION_URL}/data, unzip it, and run with "
        "--source DIR (make all SOURCE=DIR), or try the offline demo with `make demo`."
    )
