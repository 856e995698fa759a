"""train_baseline stage: the student's BiLSTM, embeddings and seed, CE on the gold training set only (Table 1 row 7).

Reads data/<task>/train.parquet; writes models/<task>/baseline/ and metrics/<task>/baseline_curve.csv.
"""
from distill.io import run_cli
from distill.train_cli import train_app

app = train_app("baseline", __doc__)

if __name__ == "__main__":
    run_cli(app)
