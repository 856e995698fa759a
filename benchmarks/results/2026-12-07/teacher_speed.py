"""§5.2's teacher timing for an offline teacher that the run at hand did not fine-tune: every training sentence of a
task, batch 512, fp32, as the benchmark stage times its teacher (distill.report.benchmark.benchmark_teacher), with
a fresh classification head of the task's width on the pre-trained encoder: fine-tuning changes no shape, so the
cost is the fine-tuned teacher's. Run from the repository root, pinned:
    PYTHONPATH=. OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/results/2026-12-07/teacher_speed.py --task sst2 --model minilm
"""
import argparse
import json
import platform

import torch
from transformers import AutoModelForSequenceClassification

from distill.data.splits import load_split
from distill.layout import TaskPaths
from distill.report.benchmark import benchmark_teacher
from distill.runtime import cpu_vector_flags
from distill.tasks import load_task
from distill.teacher.finetune import resolve_model_source
from distill.teacher.model import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", default="minilm", help="minilm | mpnet | a model directory")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    paths = TaskPaths(args.task)
    task = load_task(paths)
    train = load_split(paths, task, "train")
    first = train[task.text_columns[0]].astype(str).tolist()
    second = train[task.text_columns[1]].astype(str).tolist() if task.is_pair else None
    source, local = resolve_model_source(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=task.num_labels,
                                                               local_files_only=local).eval()
    tokenizer = load_tokenizer(source, local)
    result = benchmark_teacher(model, tokenizer, first, second, args.batch_size, args.max_length,
                               torch.device("cpu"))
    result.update(model=args.model, task=args.task, batch_size=args.batch_size, threads=torch.get_num_threads(),
                  cpu=platform.processor() or platform.machine(), cpu_flags=cpu_vector_flags(), precision="fp32")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
