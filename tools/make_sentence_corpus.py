"""Build the sentence corpora of the precision gates from text that ships with installed packages.

Sentences come from the docstrings of the top-level modules on the path (the standard library and the
installed packages; no network). The output is committed: the tests read the files, not this script.
One sentence a line, sorted by a hash so that the order is fixed and the topics are mixed.

    python3 tools/make_sentence_corpus.py   # writes tests/data/sentences.txt, fastbert/quant/calibration.txt,
                                            # tests/data/labeled_sentences.tsv
    python3 tools/make_sentence_corpus.py labeled   # the last one only (Python 3.11: distutils, lib2to3 gone in 3.12)

The sentences depend on the Python and the packages installed where this runs: the committed files were
made once (tests/data/sentences.txt and calibration.txt before labeled_sentences.tsv, with other packages
installed), and making them again changes the gates' inputs.
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


def _prose(doc: str):
    """The sentences of a docstring that read as prose (6-60 words, capitalised, ending in a period)."""
    text = re.sub(r"\s+", " ", doc)
    for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
        s = s.strip()
        words = s.split()
        if not 6 <= len(words) <= 60 or not s[0].isupper() or not s.endswith("."):
            continue
        if sum(c.isalpha() or c == " " for c in s) < 0.85 * len(s):  # prose, not code
            continue
        yield s


def _by_hash(sentences) -> list[str]:
    return sorted(sentences, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


def sentences() -> list[str]:
    seen, out = set(), []
    for doc in _docstrings():
        for s in _prose(doc):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return _by_hash(out)


#: the labels of the classification gate: standard-library packages with many docstrings each
PACKAGES = ("asyncio", "builtins", "distutils", "email", "http", "logging", "unittest", "xml")
PER_PACKAGE = 250


def _package_docstrings(package: str):
    """The docstrings of a standard-library package: its modules, their classes, functions and methods."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = importlib.import_module(package)
        modules = [root]
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), package + "."):
            if ".test" in info.name or info.name.rsplit(".", 1)[-1].startswith("__"):
                continue
            try:
                modules.append(importlib.import_module(info.name))
            except BaseException:  # noqa: BLE001 - a module that does not import (or exits) is skipped
                continue
    for mod in modules:
        yield mod.__doc__
        for obj in list(vars(mod).values()):
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            yield getattr(obj, "__doc__", None)
            if isinstance(obj, type):
                yield from (getattr(v, "__doc__", None) for v in vars(obj).values() if callable(v))


def labeled(exclude: set[str]) -> list[tuple[str, str]]:
    """(package, sentence) pairs: the classification gate's corpus. Each sentence labelled with the
    standard-library package whose docstrings it comes from (a sentence in two packages is left out), the
    first PER_PACKAGE of each in hash order, none of ``exclude`` (the calibration set)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        found[package] = {
            s for doc in _package_docstrings(package) if isinstance(doc, str) for s in _prose(doc)
        }
    out = []
    for package, mine in found.items():
        others = set().union(*(v for k, v in found.items() if k != package))
        kept = _by_hash(mine - others - exclude)
        if len(kept) < PER_PACKAGE:
            raise SystemExit(f"{package}: {len(kept)} sentences, fewer than {PER_PACKAGE}")
        out += [(package, s) for s in kept[:PER_PACKAGE]]
    return sorted(out, key=lambda t: hashlib.sha1(t[1].encode()).hexdigest())


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Write the precision gates' sentence corpora (committed: making them again changes the "
        "gates' inputs)."
    )
    parser.add_argument(
        "which",
        nargs="?",
        choices=("all", "labeled"),
        default="all",
        help="all: tests/data/sentences.txt, fastbert/quant/calibration.txt and tests/data/labeled_sentences.tsv; "
        "labeled: the last one only",
    )
    which = parser.parse_args(argv).which  # anything else (a typo, --help) writes nothing
    calibration = ROOT / "fastbert" / "quant" / "calibration.txt"
    if which == "all":
        corpus = sentences()
        print(f"{len(corpus)} sentences")
        test, calib = corpus[:1500], corpus[1500:1628]
        (ROOT / "tests" / "data" / "sentences.txt").write_text("\n".join(test) + "\n")
        calibration.write_text("\n".join(calib) + "\n")
    pairs = labeled(set(calibration.read_text().splitlines()))
    (ROOT / "tests" / "data" / "labeled_sentences.tsv").write_text("".join(f"{p}\t{s}\n" for p, s in pairs))
    print(f"{len(pairs)} labelled sentences")


if __name__ == "__main__":
    main()
