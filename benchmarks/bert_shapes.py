"""Encoders of BERT-base and BERT-large shape with random weights: the paper's teachers' cost (no weights of them
are available offline; timing depends on the shapes, not on the weights). MiniLM's tokenizer is BERT's uncased
WordPiece vocabulary, so it serves them."""
import torch

# (hidden, intermediate, layers, heads)
BERT_SHAPES = {"bert-base": (768, 3072, 12, 12), "bert-large": (1024, 4096, 24, 16)}


def shaped_teacher(name: str, vocab_size: int, num_labels: int = 2):
    """A BertForSequenceClassification of `name`'s shape, random weights (seed 0), in eval mode, on the CPU."""
    from transformers import BertConfig, BertForSequenceClassification

    hidden, intermediate, layers, heads = BERT_SHAPES[name]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                        num_hidden_layers=layers, num_attention_heads=heads, num_labels=num_labels)
    return BertForSequenceClassification(config).eval()
