"""Toy-sized real models for fast tests: a random llama with a small byte-level BPE tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The capital of France is Paris. Two plus two is four.",
    "Respect the person's choices, protect their privacy, explain your reasoning.",
    "I can't help with that, but here is what I can do instead.",
    "Question: what is 12 times 3? Answer: 36. #### 36",
    "user assistant system kernel axioms consent dignity sovereignty transparency",
] * 4


def make_tokenizer(path: Path, vocab_size: int = 384) -> int:
    """Train a byte-level BPE on a tiny corpus and save it as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    return tok.get_vocab_size()


def make_tiny_llama(path: str | Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a random llama (float32) with its tokenizer to `path`; mlx_lm.load opens it."""
    import mlx.core as mx
    from mlx_lm.models import llama
    from mlx_lm.utils import save_model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = make_tokenizer(path)
    config = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "tie_word_embeddings": True,
        "max_position_embeddings": 512,
        "eos_token_id": SPECIALS.index("<|im_end|>"),
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    save_model(path, model)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
