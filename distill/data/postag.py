"""Penn Treebank POS tags of the training set with NLTK's averaged-perceptron tagger (§3.3's POS-guided replacement).

The model is NLTK's `averaged_perceptron_tagger_eng`, from `nltk.download` when there is internet. Offline, the
`textblob-aptagger==0.2.0` package ships a model for the same tagger (Honnibal's averaged perceptron, same features,
same Penn Treebank tag set) as a pickle `(weights, tagdict, classes)`; it is rewritten here as the three JSON files
NLTK's `PerceptronTagger` loads, in an NLTK data dir this module controls, so tagging still goes through plain NLTK
(`PerceptronTagger`, `nltk.pos_tag`). It is NOT bit-identical to NLTK's model, which is a later training run: both
give NLTK's documented tags for "John 's big idea is n't all that bad ." and "Banks check books .", but
on NLTK's doctest "The quick brown fox jumps ..." the textblob model tags `jumps` NNS where NLTK's gives VBZ, and
`red` in "The red cat" NN where NLTK's gives JJ. The source used is logged.
"""
from __future__ import annotations

import importlib.util
import json
import pickle
import socket
from pathlib import Path

import nltk
import nltk.tag
import numpy as np
import pandas as pd
from nltk.tag.perceptron import PerceptronTagger
from tqdm import tqdm

from distill.io import UserError, atomic_path, get_logger
from distill.layout import tag_columns
from distill.runtime import cache_dir

log = get_logger("postag")

RESOURCE = "taggers/averaged_perceptron_tagger_eng/"
NLTK_PACKAGE = "averaged_perceptron_tagger_eng"
TEXTBLOB_PICKLE = "trontagger-0.1.0.pickle"
DOWNLOAD_TIMEOUT_S = 30


def _model_files(data_dir: Path) -> list[Path]:
    # The names PerceptronTagger.param_files("eng") loads, in its order: weights, tagdict, classes.
    return [data_dir / RESOURCE / f"averaged_perceptron_tagger_eng.{a}.json" for a in ("weights", "tagdict", "classes")]


def textblob_pickle_path() -> Path:
    # find_spec does not execute the package (its __init__ imports a textblob API that no longer exists).
    spec = importlib.util.find_spec("textblob_aptagger")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("textblob-aptagger is not installed (pip install textblob-aptagger==0.2.0), "
                        "and NLTK's tagger could not be downloaded")
    path = Path(list(spec.submodule_search_locations)[0]) / TEXTBLOB_PICKLE
    if not path.exists():
        raise UserError(f"{path}: textblob-aptagger's model file is missing")
    return path


def install_textblob_model(data_dir: Path) -> Path:
    """Write textblob-aptagger's pickled model as NLTK's JSON model under `data_dir` (skipped if already there)."""
    files = _model_files(data_dir)
    if all(f.exists() for f in files):
        return data_dir
    with open(textblob_pickle_path(), "rb") as fh:
        weights, tagdict, classes = pickle.load(fh, encoding="latin1")  # a Python 2 pickle
    # Same layout as PerceptronTagger.encode_json_obj(); classes sorted so the files are reproducible.
    for f, obj in zip(files, (weights, tagdict, sorted(classes))):
        f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_path(f) as tmp:
            tmp.write_text(json.dumps(obj, sort_keys=True))
    log.info("converted %s -> %s", textblob_pickle_path(), files[0].parent)
    return data_dir


def _use_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if str(data_dir) in nltk.data.path:
        nltk.data.path.remove(str(data_dir))
    nltk.data.path.insert(0, str(data_dir))  # first, so nltk.pos_tag resolves to the model chosen here
    nltk.tag._get_tagger.cache_clear()


def _nltk_has_model() -> bool:
    try:
        nltk.data.find(RESOURCE)
        return True
    except LookupError:
        return False


def _try_download(data_dir: Path) -> bool:
    _use_data_dir(data_dir)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled connection must not hang the stage
    try:
        ok = nltk.download(NLTK_PACKAGE, download_dir=str(data_dir), quiet=True, raise_on_error=True)
    except Exception as err:  # offline, proxy, refused dir...: any failure means "fall back"
        log.info("nltk.download(%r) failed: %s", NLTK_PACKAGE, (str(err).splitlines() or [""])[0][:200])
        return False
    finally:
        socket.setdefaulttimeout(previous)
    return bool(ok) and _nltk_has_model()


def prepare_tagger(source: str, nltk_dir: Path | None = None):
    """Make NLTK's English perceptron model loadable and return (PerceptronTagger, source actually used).

    nltk: NLTK's own model (an installed copy, else nltk.download; an error when neither works).
    textblob: the textblob-aptagger copy, in its own data dir so it is never mistaken for NLTK's download.
    The choice is the param's alone, never the network's: the tags (and all that follows) must not depend on it.
    """
    root = Path(nltk_dir) if nltk_dir is not None else cache_dir()
    if source == "nltk":
        if _nltk_has_model():
            used = "nltk (installed)"
        elif _try_download(root / "nltk_data"):
            used = "nltk (downloaded)"
        else:
            raise UserError("postag.tagger=nltk but nltk.download('averaged_perceptron_tagger_eng') failed "
                            "(no internet?); use postag.tagger=textblob offline")
    elif source == "textblob":
        data_dir = install_textblob_model(root / "textblob_nltk_data")
        _use_data_dir(data_dir)
        used = "textblob-aptagger 0.2.0 (same tagger and tag set, earlier training run; converted to NLTK JSON)"
    else:
        raise UserError(f"postag.tagger must be textblob or nltk, not {source!r}")
    tagger = PerceptronTagger()
    log.info("POS tagger: %s, from %s", used, tagger_location())
    return tagger, used


def tagger_location() -> str:
    return str(nltk.data.find(RESOURCE))


def tag_sentences(tagger, sentences: list[str], desc: str = "POS tagging") -> dict[str, list[str]]:
    """Tags of each distinct sentence (tokens = sentence.split(" "), the text being already tokenized)."""
    unique = pd.unique(pd.Series(sentences, dtype=object))
    out = {}
    for s in tqdm(unique, desc=desc, unit="sent", mininterval=1.0):
        out[s] = [t for _, t in tagger.tag(s.split(" "))]
    return out


def tag_frame(tagger, df: pd.DataFrame, text_columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """postag frame (one list of tags per text column and row, aligned with split(" ")) and the per-tag unigram
    word counts of all training tokens (every row counts, duplicates included: that is the training distribution)."""
    texts = {c: df[c].astype(str).tolist() for c in text_columns}
    tags = tag_sentences(tagger, [s for c in text_columns for s in texts[c]])
    tag_cols = tag_columns(text_columns)
    postag = pd.DataFrame({tc: [tags[s] for s in texts[c]] for tc, c in zip(tag_cols, text_columns)})
    words = [w for c in text_columns for s in texts[c] for w in s.split(" ")]
    word_tags = [t for tc in tag_cols for row in postag[tc] for t in row]
    assert len(words) == len(word_tags)
    counts = (pd.DataFrame({"tag": word_tags, "word": words}).value_counts(sort=False).rename("count")
              .reset_index())
    counts["count"] = counts["count"].astype(np.int64)
    # Deterministic order: by tag, most frequent word first, ties by word.
    counts = counts.sort_values(["tag", "count", "word"], ascending=[True, False, True], kind="stable")
    return postag, counts.reset_index(drop=True)[["tag", "word", "count"]]
