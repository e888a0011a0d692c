"""GGUF import: the real SmolLM2 file from PyPI, and bad files that must fail in one line."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from lem.cli import main
from lem.decode import encode_chat, generate_batch
from lem.errors import LemError
from lem.fetch import MODELS, fetch_gguf, lem_home
from lem.gguf_import import import_gguf, read_header


@pytest.fixture(scope="module")
def smollm2_gguf():
    return fetch_gguf(MODELS["smollm2-135m-instruct"], lem_home())


def write_gguf(path, arch="llama", n=64):
    """A small, valid GGUF with one tensor."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(n, dtype=np.float32).reshape(8, n // 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_file(tmp_path):
    one_line_error(
        run("model", "import", tmp_path / "none.gguf", "--out", tmp_path / "m"),
        "none.gguf",
        "not found",
    )


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_text("this is a text file, not a model\n")
    one_line_error(run("model", "import", bad, "--out", tmp_path / "m"), "not a GGUF file")


def test_unsupported_architecture(tmp_path):
    f = write_gguf(tmp_path / "odd.gguf", arch="florp")
    one_line_error(
        run("model", "import", f, "--out", tmp_path / "m"), "'florp' is not supported", "llama"
    )


def test_truncated_gguf(tmp_path):
    f = write_gguf(tmp_path / "cut.gguf")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 100])
    one_line_error(run("model", "import", f, "--out", tmp_path / "m"), "truncated")
    # Cut inside the header too: still one line.
    f.write_bytes(data[:40])
    one_line_error(run("model", "import", f, "--out", tmp_path / "m"), "cut.gguf")


def test_valid_small_file_reads(tmp_path):
    header = read_header(write_gguf(tmp_path / "ok.gguf"))
    assert header["architecture"] == "llama"


def test_bad_dtype_and_non_empty_out(tmp_path):
    small = write_gguf(tmp_path / "small.gguf")
    with pytest.raises(LemError, match="--dtype"):
        import_gguf(small, tmp_path / "m", dtype="int3")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(LemError, match="not a lem import"):
        import_gguf(small, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_smollm2_answers_factual_questions(smollm2):
    questions = {
        "What is the capital of France?": "Paris",
        "What is the capital of Japan?": "Tokyo",
    }
    prompts = [encode_chat(smollm2, [{"role": "user", "content": q}]) for q in questions]
    answers = generate_batch(smollm2, prompts, max_tokens=24)
    for (question, expected), answer in zip(questions.items(), answers, strict=True):
        assert expected in answer.text, (question, answer.text)
        assert answer.finish_reason == "stop"


@pytest.mark.slow
def test_tokenizer_matches_the_gguf(smollm2, smollm2_gguf):
    from gguf import GGUFReader

    reader = GGUFReader(str(smollm2_gguf))
    template = reader.fields["tokenizer.chat_template"].contents()
    assert smollm2.tokenizer.chat_template == template
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    vocab = smollm2.tokenizer.get_vocab()
    assert len(vocab) == len(tokens)
    assert all(vocab[t] == i for i, t in enumerate(tokens))
    for text in [
        "The capital of France is Paris.",
        "Numbers 12345 and 3.14159, prices like $1,299.00!",
        "Unicode: naïve café, 東京, emoji 🙂, tabs\tand\nnewlines  double  spaces",
    ]:
        ids = smollm2.tokenizer.encode(text, add_special_tokens=False)
        assert smollm2.tokenizer.decode(ids) == text
    # SmolLM2 splits numbers into single digits (its own pre-tokenizer, set by lem).
    digits = smollm2.tokenizer.encode("12345", add_special_tokens=False)
    assert len(digits) == 5


@pytest.mark.slow
def test_keep_dtype_stays_quantized_and_answers(tmp_path, smollm2_gguf):
    import mlx.nn as nn

    from lem.models import load_model

    out = import_gguf(smollm2_gguf, tmp_path / "q4", dtype="keep")
    loaded = load_model(out, dequantize=False)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in loaded.model.named_modules())
    ids = encode_chat(loaded, [{"role": "user", "content": "What is the capital of France?"}])
    (answer,) = generate_batch(loaded, [ids], max_tokens=16)
    assert "Paris" in answer.text
