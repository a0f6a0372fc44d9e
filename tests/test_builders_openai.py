"""The openai backend against servers on loopback: a scripted one (errors, retries) and a real `transformers serve`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cgd import schema
from datasets_builders.backends.base import Request, Sampling
from datasets_builders.backends.openai_backend import OpenAIBackend
from datasets_builders.build_cgd import Builder, main
from datasets_builders.config import parse_args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedServer:
    """An OpenAI-compatible chat endpoint that fails the first ``fail_first`` calls with ``status``."""

    def __init__(
        self,
        fail_first: int = 0,
        status: int = 500,
        delay_s: float = 0.0,
        reject: str | None = None,
        truncate_first: int = 0,
    ):
        self.calls = 0
        self.fail_first = fail_first
        self.status = status
        self.delay_s = delay_s
        self.reject = reject  # prompts containing this text get a 400, as an over-long prompt would
        self.truncate_first = truncate_first  # the first answers are cut off mid-JSON (Content-Length matches)
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.calls += 1
                    failing = outer.calls <= outer.fail_first
                    truncating = outer.calls <= outer.truncate_first
                    outer.auth.append(self.headers.get("Authorization"))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.reject and outer.reject in body["messages"][-1]["content"]:
                    payload = json.dumps({"error": {"message": "This model's maximum context length is 8 tokens"}})
                    payload = payload.encode()
                    self.send_response(400)
                elif failing:
                    payload = json.dumps({"error": {"message": "scripted failure"}}).encode()
                    self.send_response(outer.status)
                    self.send_header("retry-after-ms", "10")  # the client honours it: keeps the test fast
                else:
                    user = body["messages"][-1]["content"]
                    verdict = "right" if len(user) % 2 else "wrong"
                    text = f"Echo ({body['model']}, {body['max_tokens']}): {user[:20]}\nConclusion: {verdict}"
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": 7, "total_tokens": 0},
                        }
                    ).encode()
                    if truncating:
                        payload = payload[: len(payload) // 2]
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"What is {i} times {i}?", "answer": str(i * i)}) + "\n"
            for i in range(6)
        )
    )
    return path


def _args(questions_file, out, url, *extra):
    return [
        "--source", str(questions_file), "--student_model", "stu", "--teacher_model", "tea", "--backend", "openai",
        "--base_url", url, "--output_dir", str(out), "--progress", "false", "--max_retries", "3", *extra,
    ]  # fmt: skip


def test_retries_through_server_errors(questions_file, tmp_path):
    out = tmp_path / tmp_path.name
    with ScriptedServer(fail_first=4, status=503) as server:
        report = Builder(parse_args(_args(questions_file, out, server.url, "--max_concurrency", "2"))).run()
        assert server.calls == 4 + 3 * 6  # every failure retried, every row sent once
    assert report["output"]["rows"] == 6 and report["stages"]["probe"]["requests_completed"] == 6
    rows = {r[schema.ID]: r for r in __import__("datasets").load_dataset(str(out), split="train").to_list()}
    assert all(r[schema.INITIAL_RESPONSE].startswith("Echo (stu, 4096)") for r in rows.values())
    assert all(
        r[schema.CRITIQUE].startswith("Echo (tea, 8192)") and r[schema.VERDICT] != "unparsed" for r in rows.values()
    )
    assert report["stages"]["critique"]["completion_tokens"] == 42


def test_persistent_server_errors_fail_the_stage_without_rows(questions_file, tmp_path, capsys):
    out = tmp_path / "ds"
    with ScriptedServer(fail_first=10**6, status=500) as server:
        assert main(_args(questions_file, out, server.url, "--max_retries", "2", "--max_concurrency", "1")) == 1
        assert server.calls == 3  # the first request: 1 try + 2 retries, then the stage fails at once
    err = capsys.readouterr().err
    assert "probe stage failed" in err and "HTTP 500" in err and "after 2 retries" in err
    assert (out / "checkpoints" / "shard-00000-of-00001" / "probe.jsonl").exists() is False
    assert not (out / "data").exists()


def test_unreachable_server_is_a_clear_error(questions_file, tmp_path, capsys):
    out = tmp_path / "ds"
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    assert main(_args(questions_file, out, url, "--max_retries", "1")) == 1
    err = capsys.readouterr().err
    assert "Cannot reach the OpenAI-compatible server at " + url in err and "probe stage failed" in err
    assert not (out / "checkpoints" / "shard-00000-of-00001" / "probe.jsonl").exists()
    assert not (out / "data").exists()


def test_failure_midway_keeps_finished_rows_and_resume_sends_the_rest(questions_file, tmp_path):
    out = tmp_path / tmp_path.name
    with ScriptedServer() as server:
        # The critique server dies after 2 answers: probe finishes, critique keeps what it got.
        server.fail_first = 0
        backend_calls = {"n": 0}
        original = OpenAIBackend._complete

        async def flaky(self, client, request, sampling):
            backend_calls["n"] += 1
            if self.model == "tea" and backend_calls["n"] > 6 + 2:
                raise __import__("openai").APIConnectionError(request=None)
            return await original(self, client, request, sampling)

        OpenAIBackend._complete = flaky
        try:
            assert main(_args(questions_file, out, server.url, "--max_concurrency", "1")) == 1
        finally:
            OpenAIBackend._complete = original
        critique = out / "checkpoints" / "shard-00000-of-00001" / "critique.jsonl"
        assert len(critique.read_text().splitlines()) == 2
        calls_before = server.calls
        report = Builder(parse_args(_args(questions_file, out, server.url))).run()
        assert server.calls - calls_before == 4 + 6  # the 4 missing critiques, then 6 refines
        assert report["this_run"]["probe"]["requests"] == 0 and report["this_run"]["critique"]["requests"] == 4


def test_n_greater_than_one_on_a_server_that_ignores_n():
    with ScriptedServer() as server:
        backend = OpenAIBackend("m", server.url, max_retries=0)
        got = {}
        backend.generate(
            [Request("a", "hi")], Sampling(0.7, 1.0, 8, n=3, seed=1), lambda r, c: got.__setitem__(r.id, c)
        )
        assert len(got["a"]) == 3 and server.calls == 3 and backend.num_requests == 3


# -- a real server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_server(tmp_path_factory):
    """`transformers serve <tiny checkpoint>` on a free loopback port (module-scoped: it takes ~10-20 s to start)."""
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
    if exe is None:
        pytest.skip("the `transformers` CLI is not installed")
    from cgd.testing import save_tiny_checkpoint

    model_dir = save_tiny_checkpoint(tmp_path_factory.mktemp("served-tiny"))
    port = free_port()
    log = open(tmp_path_factory.mktemp("serve-log") / "serve.log", "w+")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"transformers serve exited early:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve was not ready within 120 s")
            time.sleep(0.25)
        yield url + "/v1", str(model_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_openai_backend_against_transformers_serve(questions_file, tmp_path, transformers_server):
    url, model = transformers_server
    out = tmp_path / tmp_path.name
    args = _args(questions_file, out, url, "--num_samples", "3", "--student_model", model, "--teacher_model", model)
    args += [
        "--probe_max_tokens",
        "8",
        "--critique_max_tokens",
        "8",
        "--refine_max_tokens",
        "8",
        "--max_concurrency",
        "2",
    ]
    args += ["--filter_unparsed", "false", "--filter_empty", "false", "--filter_truncated", "false"]
    report = Builder(parse_args(args)).run()
    rows = __import__("datasets").load_dataset(str(out), split="train").to_list()
    assert len(rows) == 3
    for r in rows:
        for stage in ("probe", "critique", "refine"):
            assert r[schema.finish_reason_column(stage)] in ("stop", "length")
            assert 1 <= r[schema.num_tokens_column(stage)] <= 8
    assert report["stages"]["critique"]["prompt_tokens"] > 0 and report["stages"]["probe"]["requests_completed"] == 3


# -- requests the server rejects, broken bodies, credentials ----------------------------------------


def _rejecting_questions(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"id": f"q{i}", "question": f"What is {i} times {i}?"} for i in range(6)]
    rows[3]["question"] = "A very long question TOO-LONG that no context holds"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_rejected_request_is_a_counted_failed_row_and_the_build_goes_on(tmp_path):
    out = tmp_path / tmp_path.name
    questions = _rejecting_questions(tmp_path)
    with ScriptedServer(reject="TOO-LONG") as server:
        assert main(_args(questions, out, server.url, "--id_column", "id")) == 0
        report = json.loads((out / "build_report.json").read_text())
        (failed,) = report["failed_requests"]
        assert failed["stage"] == "probe" and failed["status"] == 400 and "maximum context length" in failed["reason"]
        assert report["stages"]["probe"]["failed"] == 1 and report["stages"]["probe"]["rows"] == 5
        assert report["output"]["rows"] == 5 and "rejected by the server as invalid" in (out / "README.md").read_text()
        rows = __import__("datasets").load_dataset(str(out), split="train").to_list()
        assert len(rows) == 5 and failed["id"] not in {r[schema.ID] for r in rows}
        calls = server.calls
        assert main(_args(questions, out, server.url, "--id_column", "id")) == 0  # a rerun finishes, sends nothing
        assert server.calls == calls


def test_a_server_rejecting_everything_fails_the_stage(questions_file, tmp_path, capsys):
    out = tmp_path / "ds"
    with ScriptedServer(reject="What is") as server:  # 6 questions, all rejected
        assert main(_args(questions_file, out, server.url, "--max_concurrency", "1")) == 1
    with ScriptedServer(reject="What is") as server:  # 20: it stops after the first 8
        many = tmp_path / "many.jsonl"
        many.write_text("".join(json.dumps({"question": f"What is {i}?"}) + "\n" for i in range(20)))
        assert main(_args(many, tmp_path / "ds2", server.url, "--max_concurrency", "1")) == 1
        assert server.calls == 8
    err = capsys.readouterr().err
    assert "rejected the first 6 requests (HTTP 400" in err and "rejected the first 8 requests" in err
    assert "a setting is likely wrong" in err


def test_a_cut_off_json_body_is_retried_then_named(questions_file, tmp_path, capsys):
    with ScriptedServer(truncate_first=2) as server:  # two broken bodies, then good ones: the build succeeds
        out = tmp_path / tmp_path.name
        report = Builder(parse_args(_args(questions_file, out, server.url, "--max_concurrency", "1"))).run()
        assert report["output"]["rows"] == 6 and server.calls == 2 + 3 * 6
    with ScriptedServer(truncate_first=10**6) as server:
        assert main(_args(questions_file, tmp_path / "ds", server.url, "--max_retries", "1")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: probe stage failed: The server at http://127.0.0.1:")
    assert "not valid JSON (cut off?) 2 times" in err[-1] and "Traceback" not in "\n".join(err)


def test_credentials_in_base_url_are_sent_as_basic_auth_and_never_logged(questions_file, tmp_path, caplog):
    import base64
    import logging

    secret = "sk-in-the-url-123"
    out = tmp_path / tmp_path.name
    with ScriptedServer() as server, caplog.at_level(logging.DEBUG):
        url = server.url.replace("http://", f"http://alice:{secret}@")
        Builder(parse_args(_args(questions_file, out, url, "--num_samples", "2"))).run()
        assert set(server.auth) == {"Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()}
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx logged its requests...
    assert secret not in caplog.text  # ...without the key
    for path in out.rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path
