import mlx.core as mx
import pytest

from lem.decode import encode_chat, generate_batch
from lem.errors import LemError
from lem.models import load_model, resolve_model_path


def test_tiny_llama_round_trip_through_load_model(tiny_llama_dir):
    import json

    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    loaded = load_model(tiny_llama_dir)
    assert loaded.is_chat
    assert loaded.path == tiny_llama_dir
    # The saved weights come back unchanged.
    weights = mx.load(str(tiny_llama_dir / "model.safetensors"))
    params = dict(tree_flatten(loaded.model.parameters()))
    assert set(weights) == set(params)
    for name, value in weights.items():
        assert mx.array_equal(value, params[name]), name
    # It runs: greedy generation is deterministic and stops at the cap.
    ids = encode_chat(loaded, [{"role": "user", "content": "The capital of France"}])
    a, b = generate_batch(loaded, [ids, ids], max_tokens=5)
    assert a.text == b.text and a.tokens == 5 and a.finish_reason == "length"
    cfg = json.loads((tiny_llama_dir / "config.json").read_text())
    assert isinstance(loaded.model, llama.Model) and cfg["num_hidden_layers"] == 2


def test_missing_local_model_is_an_error_not_a_hub_id(tmp_path):
    with pytest.raises(LemError, match="no such directory"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(LemError, match="no such directory"):
        resolve_model_path("./models/x")


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(LemError, match="not an MLX model directory"):
        resolve_model_path(str(tmp_path))


def test_bad_adapter_path(tiny_llama_dir, tmp_path):
    with pytest.raises(LemError, match="not an adapter directory"):
        load_model(tiny_llama_dir, adapter=tmp_path)


def test_quantized_model_is_dequantized_to_float32_on_cpu(tiny_llama_dir, tmp_path):
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import quantize_model, save_config, save_model

    loaded = load_model(tiny_llama_dir)
    model, config = quantize_model(loaded.model, dict(loaded.config), group_size=32, bits=4)
    out = tmp_path / "q4"
    save_model(out, model)
    save_config(config, out / "config.json")
    for f in tiny_llama_dir.iterdir():
        if not f.name.startswith(("model", "config")):
            (out / f.name).write_bytes(f.read_bytes())
    kept = load_model(out, dequantize=False)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in kept.model.named_modules())
    auto = load_model(out)  # tests run on the CPU: de-quantized by default
    assert auto.dequantized
    assert not any(isinstance(m, nn.QuantizedLinear) for _, m in auto.model.named_modules())
    assert {v.dtype for _, v in tree_flatten(auto.model.parameters())} == {mx.float32}
    ids = encode_chat(auto, [{"role": "user", "content": "hi"}])
    logits_q = kept.model(mx.array([ids]))
    logits_f = auto.model(mx.array([ids]))
    assert mx.allclose(logits_q, logits_f, atol=1e-3).item()


def test_batch_answers_come_back_in_prompt_order_whatever_their_lengths(tiny_llama_dir):
    """Prompts run shortest first; each answer still lands on its own prompt, the same as
    that prompt run alone, and each prompt keeps its own cap."""
    loaded = load_model(tiny_llama_dir)
    texts = ["a long question " * 12, "hi", "a middling question " * 4, "yes or no"]
    prompts = [encode_chat(loaded, [{"role": "user", "content": t}]) for t in texts]
    assert sorted(map(len, prompts)) != list(map(len, prompts))  # the order really changes
    caps = [6, 2, 4, 3]
    together = generate_batch(loaded, prompts, max_tokens=caps)
    for prompt, cap, answer in zip(prompts, caps, together, strict=True):
        (alone,) = generate_batch(loaded, [prompt], max_tokens=cap)
        assert (answer.text, answer.tokens, answer.prompt_tokens) == (
            alone.text,
            alone.tokens,
            len(prompt),
        )
        assert answer.tokens <= cap
