"""distill/data/postag.py: the offline (textblob-aptagger) model loads through plain NLTK; tags and unigram counts
line up; the postag stage."""
import json

import nltk
import pandas as pd
import pytest

import distill.data.postag as postag
from distill.io import UserError
from conftest import one_line_error, run_stage
from distill.layout import TaskPaths
from helpers import cli_dirs, write_params, write_task_file


@pytest.fixture(scope="module")
def offline_tagger(tmp_path_factory):
    """The textblob copy of the model, converted into a private NLTK data dir; nltk.data.path restored after."""
    saved = list(nltk.data.path)
    root = tmp_path_factory.mktemp("nltk_cache")
    tagger, used = postag.prepare_tagger("textblob", root)
    yield tagger, used, root
    nltk.data.path[:] = saved
    nltk.tag._get_tagger.cache_clear()


def tags_of(sentence):
    return [t for _, t in nltk.pos_tag(sentence.split(" "))]


def test_plain_nltk_pos_tag_uses_converted_model(offline_tagger):
    _, used, root = offline_tagger
    assert used.startswith("textblob")
    assert postag.tagger_location().startswith(str(root))
    # NLTK's own documented outputs (nltk/tag/__init__.py, corpus/reader/wordnet.py, parse/util.py doctests).
    assert tags_of("John 's big idea is n't all that bad .") == \
        ["NNP", "POS", "JJ", "NN", "VBZ", "RB", "PDT", "DT", "JJ", "."]
    assert tags_of("Banks check books .") == ["NNS", "VBP", "NNS", "."]
    assert tags_of("This is a foobar sentence .") == ["DT", "VBZ", "DT", "JJ", "NN", "."]
    # NLTK's model (a later training run) tags `jumps` VBZ here; the textblob model's NNS is a known difference.
    assert tags_of("The quick brown fox jumps over the lazy dog") == \
        ["DT", "JJ", "NN", "NN", "NNS", "IN", "DT", "JJ", "NN"]


def test_written_json_loads_with_nltk_loader(offline_tagger):
    _, _, root = offline_tagger
    folder = root / "textblob_nltk_data" / "taggers" / "averaged_perceptron_tagger_eng"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"averaged_perceptron_tagger_eng.{a}.json" for a in ("classes", "tagdict", "weights")]
    loaded = nltk.tag.perceptron.PerceptronTagger(loc=folder)
    classes = json.loads((folder / "averaged_perceptron_tagger_eng.classes.json").read_text())
    assert loaded.classes == set(classes) and len(classes) == 45 and {"NN", "VBZ", "-LRB-", "."} <= set(classes)
    assert loaded.tagdict["the"] == "DT" and len(loaded.tagdict) > 2000
    assert loaded.tag(["it", "is", "good"]) == [("it", "PRP"), ("is", "VBZ"), ("good", "JJ")]


def test_tag_frame_pairs_aligned_and_unigrams_counted(offline_tagger):
    tagger = offline_tagger[0]
    df = pd.DataFrame({"sentence1": ["the cat sat .", "a dog ran", "the cat sat ."],
                       "sentence2": ["the dog", "cats run fast .", "the dog"]})
    tags, unigrams = postag.tag_frame(tagger, df, ("sentence1", "sentence2"))
    assert list(tags.columns) == ["tags1", "tags2"] and len(tags) == 3
    for col, tcol in (("sentence1", "tags1"), ("sentence2", "tags2")):
        assert [len(t) for t in tags[tcol]] == [len(s.split(" ")) for s in df[col]]
    assert tags["tags1"][0] == [t for _, t in tagger.tag("the cat sat .".split())]
    assert list(unigrams.columns) == ["tag", "word", "count"]
    assert unigrams["count"].sum() == sum(len(s.split(" ")) for c in df for s in df[c])
    row = unigrams[(unigrams["word"] == "the")]
    assert row["tag"].tolist() == ["DT"] and row["count"].tolist() == [4]  # duplicate rows count
    again = postag.tag_frame(tagger, df, ("sentence1", "sentence2"))[1]
    pd.testing.assert_frame_equal(unigrams, again)
    order = list(zip(unigrams["tag"], -unigrams["count"], unigrams["word"]))
    assert order == sorted(order)


def test_tagger_is_the_params_choice_never_the_networks(offline_tagger, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(postag, "_nltk_has_model", lambda: False)
    monkeypatch.setattr(nltk, "download", no_network)
    with pytest.raises(UserError, match="postag.tagger=nltk but nltk.download"):
        postag.prepare_tagger("nltk", offline_tagger[2])  # no silent fallback to the other model
    for gone in ("auto", "spacy"):
        with pytest.raises(UserError, match=f"must be textblob or nltk, not '{gone}'"):
            postag.prepare_tagger(gone, offline_tagger[2])
    _, used = postag.prepare_tagger("textblob", offline_tagger[2])  # offline: never touches the network
    assert used.startswith("textblob")


def test_stage_writes_both_files(tmp_path):
    paths = TaskPaths("rotten_tomatoes", tmp_path / "data")
    write_task_file(paths)
    train = pd.DataFrame({"idx": [0, 1], "sentence": ["a charming journey .", "it 's dull"], "label": [1, 0],
                          "split": ["train", "train"]})
    train.to_parquet(paths.train)
    write_params(tmp_path, postag={"tagger": "textblob"})
    args = ["--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "params"), "--nltk-dir", str(tmp_path / "cache")]
    run_stage("postag.py", *args)
    tags = pd.read_parquet(paths.postag)
    assert list(tags.columns) == ["tags"] and tags["tags"].map(list).tolist() == [
        ["DT", "JJ", "NN", "."], ["PRP", "VBZ", "JJ"]]
    unigrams = pd.read_parquet(paths.tag_unigrams)
    assert list(unigrams.columns) == ["tag", "word", "count"] and unigrams["count"].sum() == 7
    proc = run_stage("postag.py", *args, "--set", "postag.tagger=auto", check=False)
    assert one_line_error(proc) == "error: --set postag.tagger must be one of textblob, nltk, got 'auto'"
