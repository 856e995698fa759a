"""train_student stage: distil the teacher's logits into the BiLSTM student (§3.2) -> models/<task>/student/.

Reads data/<task>/teacher_logits.parquet; writes models/<task>/student/ and metrics/<task>/student_curve.csv.
"""
from distill.io import run_cli
from distill.train_cli import train_app

app = train_app("student", __doc__)

if __name__ == "__main__":
    run_cli(app)
