"""lem fuse: fused model == base + adapter, quantized bases, GGUF export, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_train import settings, write_data

from lem.errors import LemError
from lem.fuse import GGUF_FILE, fuse
from lem.store import verify_manifest
from lem.train import train

TOKENS = [[1, 5, 9, 17, 33, 65, 120, 200, 7, 2]]


@pytest.fixture(scope="module")
def trained(tiny_llama_dir, tmp_path_factory):
    """Adapters of each kind after a few steps at a high learning rate (far from zero)."""
    root = tmp_path_factory.mktemp("adapters")
    data = write_data(root / "data")
    for kind in ("lora", "dora", "full"):
        train(settings(tiny_llama_dir, data, root / kind, iters=3, fine_tune_type=kind))
    return root


def logits(loaded) -> np.ndarray:
    import mlx.core as mx

    return np.array(loaded.model(mx.array(TOKENS)))


@pytest.mark.parametrize("kind", ["lora", "dora", "full"])
def test_fused_model_gives_the_logits_of_base_plus_adapter(kind, tiny_llama_dir, trained, tmp_path):
    from lem.models import load_model

    adapter = trained / kind / "adapter"
    out = fuse(tiny_llama_dir, adapter, tmp_path / "fused")
    with_adapter = logits(load_model(tiny_llama_dir, adapter=adapter))
    fused = load_model(out)
    np.testing.assert_allclose(logits(fused), with_adapter, rtol=1e-4, atol=1e-4)
    assert np.abs(with_adapter - logits(load_model(tiny_llama_dir))).max() > 1e-3  # it changed
    assert fused.is_chat  # tokenizer and chat template travel with the model
    assert verify_manifest(out / "manifest.json") == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "fuse" and "model.safetensors" in manifest["outputs"]


def test_quantized_base_stays_quantized_unless_dequantized(tiny_llama_dir, trained, tmp_path):
    from mlx_lm import convert

    from lem.models import load_model

    q4 = tmp_path / "q4"
    convert(str(tiny_llama_dir), str(q4), quantize=True, q_group_size=32, q_bits=4)
    adapter = trained / "lora" / "adapter"
    kept = fuse(q4, adapter, tmp_path / "kept")
    assert "quantization" in json.loads((kept / "config.json").read_text())
    plain = fuse(q4, adapter, tmp_path / "plain", dequantize=True)
    assert "quantization" not in json.loads((plain / "config.json").read_text())
    # the adapter's delta is added to the de-quantized weights exactly
    with_adapter = logits(load_model(q4, adapter=adapter, dequantize=False))
    np.testing.assert_allclose(logits(load_model(plain)), with_adapter, rtol=1e-4, atol=1e-4)
    with pytest.raises(LemError, match="quantized; add --dequantize"):
        fuse(q4, adapter, tmp_path / "gguf", export_gguf=True)


def _gguf_tensors(path: Path) -> dict:
    import mlx.core as mx

    tensors, metadata = mx.load(str(path), return_metadata=True)
    assert str(metadata["general.architecture"]) == "llama"
    return tensors


@pytest.mark.parametrize("traditional", [False, True])
def test_gguf_export_keeps_llama_cpp_rotary_layout(traditional, tiny_llama_dir, trained, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    config = json.loads((base / "config.json").read_text())
    config["rope_traditional"] = traditional
    (base / "config.json").write_text(json.dumps(config))
    out = fuse(base, trained / "lora" / "adapter", tmp_path / "fused", export_gguf=True)
    from lem.models import load_model

    q = np.array(load_model(out).model.layers[0].self_attn.q_proj.weight)
    tensors = _gguf_tensors(out / GGUF_FILE)
    gguf_q = np.array(tensors["blk.0.attn_q.weight"])
    np.testing.assert_allclose(np.array(tensors["blk.0.ffn_up.weight"]), _up(out), rtol=1e-6)
    # traditional (GGUF-imported) weights are already in llama.cpp's layout; HF ones get permuted
    assert np.array_equal(gguf_q, q) is traditional
    assert sorted(gguf_q.ravel().tolist()) == pytest.approx(sorted(q.ravel().tolist()))


def _up(out: Path) -> np.ndarray:
    from lem.models import load_model

    return np.array(load_model(out).model.layers[0].mlp.up_proj.weight)


def test_gguf_export_refuses_other_architectures(tiny_llama_dir, trained, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps(config | {"model_type": "qwen2"}))
    with pytest.raises(LemError, match="not 'qwen2'"):
        fuse(base, trained / "lora" / "adapter", tmp_path / "out", export_gguf=True)
    assert not (tmp_path / "out").exists()


def test_fuse_never_overwrites_a_foreign_directory(tiny_llama_dir, trained, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(LemError, match="not a lem fuse output"):
        fuse(tiny_llama_dir, trained / "lora" / "adapter", out)
    assert (out / "notes.txt").read_text() == "keep me"
    again = tmp_path / "again"
    fuse(tiny_llama_dir, trained / "lora" / "adapter", again)
    fuse(tiny_llama_dir, trained / "lora" / "adapter", again)  # an earlier fuse is replaced
    assert verify_manifest(again / "manifest.json") == []


def test_cli_fuse(tiny_llama_dir, trained, tmp_path):
    from lem.cli import main

    out = tmp_path / "fused"
    args = ["fuse", "--model", str(tiny_llama_dir), "--out", str(out)]
    ok = CliRunner().invoke(main, args + ["--adapter", str(trained / "lora" / "adapter")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == str(out) and (out / "config.json").is_file()
    missing = CliRunner().invoke(main, args + ["--adapter", str(tmp_path)])
    assert missing.exit_code == 2 and "not an adapter directory" in missing.output
