"""BiLSTM-Distill: the library behind the DVC stages (Tang et al. 2019, distilling BERT into a BiLSTM)."""
