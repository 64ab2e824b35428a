"""Small models for the registry tests, at module level so the registry can import them back;
Transformers ones are built from a config and a word list, offline."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TinyClassifier(nn.Module):
    def __init__(self, features: int = 4, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def toy_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def train(steps: int, seed: int = 0, hidden: int = 8) -> tuple[TinyClassifier, float]:
    """A classifier trained ``steps`` steps, and its accuracy on the training data."""
    torch.manual_seed(seed)
    model = TinyClassifier(hidden=hidden)
    x, y = toy_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    return model, accuracy


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# -- a tiny Transformers model and tokenizer, built offline from a config and a word list -------

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "models", "live", "in", "git", "with",
         "lance", "and", "toml", "manifests"]  # fmt: skip
SENTENCES = ["models live in git", "lance and toml manifests", "git with unknown words"]


def tiny_tokenizer() -> Any:
    """A word-level fast tokenizer over ``WORDS`` that adds [CLS] ... [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_bert(seed: int = 0) -> Any:
    """A 2-layer BERT classifier (hidden size 32) with random weights, in eval mode."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
    )
    return BertForSequenceClassification(config).eval()


def token_ids(tokenizer: Any) -> list[list[int]]:
    return [tokenizer(text)["input_ids"] for text in SENTENCES]


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits
