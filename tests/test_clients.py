"""The chat clients: spec parsing, the real SDKs against local wire-format servers,
the retry policy, concurrency, secrets, and the in-process MLX backend."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from servers import FakeGemini, FakeOpenAI, Reply

from lem.clients import ApiOptions, ChatRequest, ChatResult, make_client, usage_summary
from lem.clients.gemini import GeminiClient
from lem.clients.mlx import MlxClient
from lem.clients.openai import OpenAIClient
from lem.clients.retry import RetryPolicy, parse_retry_after
from lem.errors import LemError
from lem.models import parse_model_ref

SECRET = "AIzaSy-test-secret-0123456789"
SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}},
    "required": ["score"],
}


def ask(text: str, max_tokens: int = 16, **kw) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], max_tokens, **kw)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)


class Sleeps(list):
    """Records the delays a client asked to sleep, without sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(server, **kw):
    """A client of the right provider for a fake server, with a recording sleep."""
    provider = "gemini" if isinstance(server, FakeGemini) else "openai"
    client = make_client(f"{provider}/test-model", ApiOptions(**kw), server.base_url)
    client.retry.sleep = Sleeps()
    return client


@pytest.fixture(params=["gemini", "openai"])
def server(request):
    with FakeGemini() if request.param == "gemini" else FakeOpenAI() as s:
        yield s


# ---------------------------------------------------------------- specs


def test_specs_parse_once_into_references():
    # A hub id is an MLX model whether or not it says mlx/ (as --model reads it).
    bare = parse_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert bare == parse_model_ref("mlx/HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (bare.provider, bare.spec) == ("mlx", "mlx/HuggingFaceTB/SmolLM2-135M-Instruct")
    assert parse_model_ref("serve:pypi:x").spec == "serve:pypi:x"
    assert parse_model_ref("openai/m", "http://h:1/v1").base_url == "http://h:1/v1"
    assert parse_model_ref("mlx/m", "http://h:1/v1").base_url is None  # not an API model
    # A path that does not exist and is no hub id or provider spec is an error.
    with pytest.raises(LemError, match=r"not a hub id.*mlx/.*gemini/.*openai/"):
        make_client("claude/opus/4")
    with pytest.raises(LemError, match="no such directory"):
        make_client("./no/such/model")


def test_spec_without_model_and_bad_numbers():
    with pytest.raises(LemError, match="names no model"):
        make_client("gemini/")
    with pytest.raises(LemError, match="gemini/x: concurrency must be at least 1"):
        make_client("gemini/x", ApiOptions(concurrency=0))
    with pytest.raises(LemError, match="max_retries"):
        make_client("gemini/x", ApiOptions(max_retries=-1))


def test_gemini_without_a_key_says_which_variable_to_set(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(LemError, match="set GEMINI_API_KEY"):
        make_client("gemini/gemini-2.0-flash")
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    client = make_client("gemini/gemini-2.0-flash", None, "http://127.0.0.1:9")
    assert isinstance(client, GeminiClient) and client.spec == "gemini/gemini-2.0-flash"


def test_openai_needs_a_base_url(monkeypatch):
    with pytest.raises(LemError, match="needs a server URL.*OPENAI_BASE_URL"):
        make_client("openai/gpt-4o-mini")
    with pytest.raises(LemError, match="set OPENAI_API_KEY"):
        make_client("openai/gpt-4o-mini", None, "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = make_client("openai/judge")
    assert isinstance(client, OpenAIClient) and client.base_url == "http://127.0.0.1:9/v1"


def test_mlx_specs_load_the_model(tiny_llama_dir):
    bare = make_client(str(tiny_llama_dir))
    prefixed = make_client(f"mlx/{tiny_llama_dir}")
    assert isinstance(bare, MlxClient) and isinstance(prefixed, MlxClient)
    assert bare.spec == prefixed.spec == f"mlx/{tiny_llama_dir}"
    with pytest.raises(LemError, match="no such directory"):
        make_client("mlx/./no/such/model")
    served = parse_model_ref(f"serve:{tiny_llama_dir}")
    assert served.identity() == parse_model_ref(str(tiny_llama_dir)).identity()


def test_mlx_model_without_chat_template_is_refused(tiny_llama_dir, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_llama_dir, plain)
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(LemError, match="no chat template"):
        make_client(str(plain))


# ---------------------------------------------------------------- the real SDKs


def test_gemini_end_to_end_through_google_genai(fake_gemini):
    fake_gemini.enqueue(
        Reply(text='{"score": 7}', prompt_tokens=11, completion_tokens=5),
        Reply(text="cut off", finish="MAX_TOKENS"),
        Reply(text="risky", finish="SAFETY"),
    )
    client = client_for(fake_gemini, concurrency=1)
    system = {"role": "system", "content": "You are a strict judge."}
    first = ChatRequest(
        [system, {"role": "user", "content": "Score this."}],
        max_tokens=32,
        temperature=0.3,
        seed=0,
        json_schema=SCHEMA,
    )
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "More"},
    ]
    results = client.complete([first, ChatRequest(turns, 8), ask("x")])
    assert [r.text for r in results] == ['{"score": 7}', "cut off", "risky"]
    assert [r.finish_reason for r in results] == ["stop", "length", "safety"]
    assert (results[0].prompt_tokens, results[0].completion_tokens) == (11, 5)
    assert all(r.ok and r.attempts == 1 for r in results)

    sent = fake_gemini.requests[0]
    assert sent.path == "/v1/models/test-model:generateContent"
    assert sent.headers["x-goog-api-key"] == SECRET
    assert sent.json["systemInstruction"]["parts"] == [{"text": "You are a strict judge."}]
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "Score this."}]}]
    config = sent.json["generationConfig"]
    assert config["temperature"] == 0.3 and config["maxOutputTokens"] == 32
    assert config["seed"] == 0  # seed=0 is a seed, not "no seed"
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"
    assert config["responseSchema"]["properties"]["score"]["type"] == "INTEGER"
    assert config["responseSchema"]["required"] == ["score"]
    roles = [c["role"] for c in fake_gemini.requests[1].json["contents"]]
    assert roles == ["user", "model", "user"]
    assert "systemInstruction" not in fake_gemini.requests[1].json
    assert "responseMimeType" not in fake_gemini.requests[1].json["generationConfig"]


def test_openai_end_to_end_through_the_openai_sdk(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    fake_openai.enqueue(
        Reply(text='{"score": 3}', prompt_tokens=20, completion_tokens=4),
        Reply(text="half", finish="length"),
    )
    client = client_for(fake_openai, concurrency=1)
    messages = [{"role": "system", "content": "judge"}, {"role": "user", "content": "q"}]
    results = client.complete(
        [ChatRequest(messages, 64, temperature=0.5, seed=0, json_schema=SCHEMA), ask("y")]
    )
    assert [r.text for r in results] == ['{"score": 3}', "half"]
    assert [r.finish_reason for r in results] == ["stop", "length"]
    assert (results[0].prompt_tokens, results[0].completion_tokens) == (20, 4)
    assert results[0].extra["response_format"] == "json_schema"

    sent = fake_openai.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.json["model"] == "test-model" and sent.json["messages"] == messages
    assert sent.json["max_tokens"] == 64 and sent.json["temperature"] == 0.5
    assert sent.json["seed"] == 0
    fmt = sent.json["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
    assert "seed" not in fake_openai.requests[1].json
    assert "response_format" not in fake_openai.requests[1].json


def test_openai_without_a_key_sends_a_placeholder(fake_openai):
    client_for(fake_openai).complete([ask("hi")])
    assert fake_openai.requests[0].headers["authorization"] == "Bearer no-key-needed"


def test_json_schema_rejected_with_400_falls_back_to_json_object(fake_openai):
    fake_openai.enqueue(Reply(status=400, message="response_format type json_schema unsupported"))
    client = client_for(fake_openai, concurrency=1)
    results = client.complete([ask("a", json_schema=SCHEMA), ask("b", json_schema=SCHEMA)])
    assert all(r.ok for r in results)
    formats = [r.json["response_format"]["type"] for r in fake_openai.requests]
    assert formats == ["json_schema", "json_object", "json_object"]  # rejected once, remembered
    for r in results:
        assert r.extra["response_format"] == "json_object"
        assert "json_schema unsupported" in r.extra["json_schema_rejected"]


def test_a_400_for_another_reason_does_not_switch_the_format(fake_openai):
    fake_openai.enqueue(
        Reply(status=400, message="prompt is too long"),
        Reply(status=400, message="prompt is too long (json_object)"),
    )
    client = client_for(fake_openai, concurrency=1)
    first, second = client.complete([ask("a", json_schema=SCHEMA), ask("b", json_schema=SCHEMA)])
    assert first.error == "HTTP 400: prompt is too long" and first.attempts == 1
    assert second.ok and second.extra["response_format"] == "json_schema"
    formats = [r.json["response_format"]["type"] for r in fake_openai.requests]
    assert formats == ["json_schema", "json_object", "json_schema"]


def test_a_server_that_wants_max_completion_tokens_gets_it(fake_openai):
    message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
    fake_openai.enqueue(Reply(status=400, message=message))
    client = client_for(fake_openai, concurrency=1)
    assert all(r.ok for r in client.complete([ask("a", 9), ask("b", 5)]))
    sent = [r.json for r in fake_openai.requests]
    assert sent[0]["max_tokens"] == 9 and "max_completion_tokens" not in sent[0]
    assert [s.get("max_completion_tokens") for s in sent[1:]] == [9, 5]
    assert not any("max_tokens" in s for s in sent[1:])


def test_a_400_without_a_schema_is_not_retried_or_reformatted(server):
    server.enqueue(Reply(status=400, message="bad request"))
    client = client_for(server)
    (result,) = client.complete([ask("x")])
    assert not result.ok and result.text is None
    assert result.error.startswith("HTTP 400") and "bad request" in result.error
    assert result.attempts == 1 and len(server.requests) == 1 and client.retry.sleep == []


# ---------------------------------------------------------------- retries


def test_429_with_retry_after_then_success(server):
    server.enqueue(Reply(status=429, headers={"Retry-After": "3"}), Reply(text="verdict"))
    client = client_for(server)
    (result,) = client.complete([ask("x")])
    assert result.ok and result.text == "verdict" and result.attempts == 2
    assert client.retry.sleep == [3.0]


def test_retry_after_as_an_http_date_and_the_cap(fake_gemini):
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 27 <= parse_retry_after(soon) <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    fake_gemini.enqueue(
        Reply(status=503, headers={"Retry-After": soon}),
        Reply(status=429, headers={"Retry-After": "3600"}),  # capped at 60 s
        Reply(text="ok"),
    )
    client = client_for(fake_gemini)
    (result,) = client.complete([ask("x")])
    assert result.ok and result.attempts == 3
    assert 26 <= client.retry.sleep[0] <= 30 and client.retry.sleep[1] == 60.0


def test_gemini_retry_info_in_the_429_body_is_honoured(fake_gemini):
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}],
        }
    }
    fake_gemini.enqueue(Reply(status=429, body=body), Reply(text="ok"))
    client = client_for(fake_gemini)
    assert client.complete([ask("x")])[0].ok and client.retry.sleep == [17.0]


def test_500s_until_retries_run_out_give_an_error_result_and_others_succeed(server):
    server.responder = lambda r: (
        Reply(status=500) if "bad" in r.user else Reply(text=r.user.upper())
    )
    client = client_for(server, max_retries=3)
    prompts = ["one", "bad", "two", "three"]
    seen: list[int] = []
    results = client.complete([ask(p) for p in prompts], on_result=lambda i, r: seen.append(i))
    assert [r.text for r in results] == ["ONE", None, "TWO", "THREE"]
    bad = results[1]
    assert bad.error.startswith("HTTP 500") and bad.attempts == 4 and not bad.ok
    assert sorted(seen) == [0, 1, 2, 3]
    # Exponential backoff with jitter: retry k waits between half and all of 2**(k-1) s.
    for k, delay in enumerate(client.retry.sleep, start=1):
        assert 0.5 * 2 ** (k - 1) <= delay <= 2 ** (k - 1)
    assert len(client.retry.sleep) == 3
    assert usage_summary(results) == {
        "requests": 4,
        "failures": 1,
        "attempts": 7,
        "prompt_tokens": 21,
        "completion_tokens": 3,
    }


def test_retry_policy_delays():
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=lambda: 1.0)
    assert [policy.delay(k, None) for k in (1, 2, 3, 8)] == [1.0, 2.0, 4.0, 60.0]
    assert RetryPolicy(jitter=lambda: 0.0).delay(3, None) == 2.0
    assert policy.delay(1, 5.0) == 5.0 and policy.delay(1, 600.0) == 60.0


def test_timeouts_and_refused_connections_are_retried_then_reported():
    with FakeOpenAI(delay=1.0) as slow:
        client = client_for(slow, timeout=0.2, max_retries=1)
        (result,) = client.complete([ask("x")])
    assert result.error == "timeout after 0.2s" and result.attempts == 2
    assert len(client.retry.sleep) == 1
    for spec in ("gemini/m", "openai/m"):
        client = make_client(spec, ApiOptions(max_retries=2), "http://127.0.0.1:9/v1")
        client.retry.sleep = Sleeps()
        (result,) = client.complete([ask("x")])
        assert result.error.startswith("connection error") and result.attempts == 3, spec


def test_empty_answers_are_errors(server):
    server.enqueue(Reply(text=None), Reply(text="  \n"), Reply(text="fine"))
    results = client_for(server, concurrency=1).complete([ask("a"), ask("b"), ask("c")])
    assert [r.text for r in results] == [None, None, "fine"]
    assert results[0].error.startswith("empty response") and results[1].error.startswith("empty")
    assert [r.status for r in results] == ["empty", "empty", "ok"]
    assert results[0].attempts == 1  # a model's answer, not a transport failure: not retried


def test_garbage_bodies_are_errors_not_exceptions(server):
    server.enqueue(Reply(body="<html>proxy error</html>"), Reply(status=502, body="Bad Gateway"))
    client = client_for(server, max_retries=0, concurrency=1)
    first, second = client.complete([ask("a"), ask("b")])
    assert first.error.startswith("unreadable response")
    assert second.error.startswith("HTTP 502")


# ---------------------------------------------------------------- concurrency and secrets


@pytest.mark.parametrize("fake", [FakeGemini, FakeOpenAI])
def test_concurrency_really_overlaps(fake):
    delay, n = 0.5, 8
    with fake(delay=delay) as slow:
        client = client_for(slow, concurrency=n)
        start = time.perf_counter()
        results = client.complete([ask(str(i)) for i in range(n)])
        elapsed = time.perf_counter() - start
    assert all(r.ok for r in results)
    assert slow.max_in_flight == n
    assert elapsed < n * delay * 0.75  # about one delay (plus load), not n of them


def test_concurrency_is_bounded_and_callbacks_run_in_the_calling_thread():
    with FakeGemini(delay=0.05) as server:
        client = client_for(server, concurrency=3)
        threads: set[int] = set()
        results = client.complete(
            [ask(str(i)) for i in range(9)],
            on_result=lambda i, r: threads.add(threading.get_ident()),
        )
    assert len(results) == 9 and all(r.ok for r in results)
    assert server.max_in_flight == 3
    assert threads == {threading.get_ident()}


def test_the_api_key_never_appears_in_errors_or_reprs(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    leaky = f"API key {SECRET} not valid; see https://x.test/?key={SECRET}&a=1"
    results: list[ChatResult] = []
    clients = []
    for fake in (FakeGemini(api_key="another-key"), FakeOpenAI()):
        with fake:
            fake.enqueue(Reply(status=401, message=leaky), Reply(status=429, message=leaky))
            client = client_for(fake, max_retries=0, concurrency=1)
            results += client.complete([ask("a"), ask("b")])
            clients.append(client)
    assert len(results) == 4 and not any(r.ok for r in results)
    for text in (
        [r.error for r in results] + [repr(r) for r in results] + [repr(c) for c in clients]
    ):
        assert SECRET not in text
    assert any("[redacted]" in r.error for r in results)


# ---------------------------------------------------------------- in-process MLX


@pytest.fixture(scope="module")
def toy_client(tmp_path_factory):
    """A random tiny llama whose greedy answers to the prompts below are not blank."""
    from toys import make_tiny_llama

    return MlxClient(str(make_tiny_llama(tmp_path_factory.mktemp("toy-seed1"), seed=1)))


def test_mlx_client_batches_like_generate_batch(toy_client):
    from lem.decode import encode_chat, generate_batch

    client = toy_client
    requests = [
        ask("The capital of France", max_tokens=6),
        ask("Two plus two", max_tokens=3, json_schema=SCHEMA),
        ask("Respect privacy", max_tokens=5, temperature=0.8, seed=1),
    ]
    finished: list[int] = []
    results = client.complete(requests, on_result=lambda i, r: finished.append(i))
    assert sorted(finished) == [0, 1, 2]
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.completion_tokens for r in results] == [6, 3, 5]  # random model: hits each cap
    assert all(r.finish_reason == "length" and r.prompt_tokens > 0 for r in results)
    assert results[1].extra["json_schema"] == "not enforced (local model)"
    # Greedy requests give what generate_batch gives for the same prompts.
    ids = [encode_chat(client.loaded, r.messages) for r in requests[:2]]
    direct = generate_batch(client.loaded, ids, max_tokens=[6, 3])
    assert [r.text for r in results[:2]] == [g.text for g in direct]
    assert results[0].prompt_tokens == len(ids[0])
    # A sampled request is reproducible with its seed.
    again = client.complete([requests[2]])
    assert again[0].text == results[2].text


@pytest.mark.slow
def test_mlx_client_on_smollm2_answers_paris(smollm2):
    client = MlxClient(smollm2)
    results = client.complete(
        [
            ask("What is the capital of France?", max_tokens=24),
            ask("Name the capital city of France in one word.", max_tokens=24),
        ]
    )
    for r in results:
        assert r.ok and "Paris" in r.text, r
        assert r.prompt_tokens > 0 and r.completion_tokens > 0


@pytest.mark.slow
def test_real_mlx_lm_server_answers_through_the_openai_client(smollm2_server):
    client = make_client("openai/default_model", ApiOptions(max_retries=1), smollm2_server)
    (result,) = client.complete([ask("What is the capital of France?", max_tokens=24)])
    assert result.ok and "Paris" in result.text, result
    assert result.finish_reason in ("stop", "length")
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


def test_mlx_blank_answers_are_empty_response_errors(tmp_path):
    from toys import make_tiny_llama

    from lem.decode import encode_chat, generate_batch

    client = MlxClient(str(make_tiny_llama(tmp_path / "toy", seed=3)))
    request = ask("Two plus two", max_tokens=4)
    raw = generate_batch(client.loaded, [encode_chat(client.loaded, request.messages)], 4)[0]
    assert raw.text.strip() == "" and raw.text, "this toy was chosen for its blank answers"
    (result,) = client.complete([request])
    assert result.text is None and result.error == "empty response" and not result.ok
    assert result.status == "empty"
    assert result.finish_reason == "length" and result.completion_tokens == 4
