"""Build the sentence corpora of the precision gates from text that ships with installed packages.

Sentences come from the docstrings of the top-level modules on the path (the standard library and the
installed packages; no network). The output is committed: the tests read the files, not this script.
One sentence a line, sorted by a hash so that the order is fixed and the topics are mixed.

    python3 tools/make_sentence_corpus.py   # writes tests/data/sentences.txt, fastbert/quant/calibration.txt
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = ("test", "idlelib", "tkinter", "turtle", "antigravity", "this", "__", "lib2to3", "ensurepip", "venv")


def _docstrings():
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.base_prefix))
    for name in names:
        if name.startswith(SKIP):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any module that does not import here is skipped
            continue
        if mod.__doc__:
            yield mod.__doc__
        for obj in list(vars(mod).values()):
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and getattr(obj, "__module__", None) == name:
                yield doc


def sentences() -> list[str]:
    seen, out = set(), []
    for doc in _docstrings():
        text = re.sub(r"\s+", " ", doc)
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
            s = s.strip()
            words = s.split()
            if not 6 <= len(words) <= 60 or not s[0].isupper() or not s.endswith("."):
                continue
            if sum(c.isalpha() or c == " " for c in s) < 0.85 * len(s):  # prose, not code
                continue
            if s not in seen:
                seen.add(s)
                out.append(s)
    return sorted(out, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def main() -> None:
    corpus = sentences()
    print(f"{len(corpus)} sentences")
    test, calib = corpus[:1500], corpus[1500:1628]
    (ROOT / "tests" / "data" / "sentences.txt").write_text("\n".join(test) + "\n")
    (ROOT / "fastbert" / "quant" / "calibration.txt").write_text("\n".join(calib) + "\n")


if __name__ == "__main__":
    main()
