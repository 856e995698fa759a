"""Encoders of the teachers' shapes with random weights: their cost, not their answers (timing depends on the
shapes, not on the weights, and no BERT weights are available offline). MiniLM's tokenizer is BERT's uncased
WordPiece vocabulary (30,522 words), so it serves all three. A library module of the tools, not a tool."""
import torch

# (hidden, intermediate, layers, heads): the published configs
SHAPES = {"minilm": (384, 1536, 6, 12), "bert-base": (768, 3072, 12, 12), "bert-large": (1024, 4096, 24, 16)}


def shaped_teacher(name: str, vocab_size: int = 30522, num_labels: int = 2):
    """A BertForSequenceClassification of `name`'s shape, random weights (seed 0), in eval mode, on the CPU."""
    from transformers import BertConfig, BertForSequenceClassification

    hidden, intermediate, layers, heads = SHAPES[name]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                        num_hidden_layers=layers, num_attention_heads=heads, num_labels=num_labels)
    return BertForSequenceClassification(config).eval()
