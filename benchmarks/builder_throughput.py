"""Builder throughput on CPU: rows/s and generated tokens/s per backend, openai client overhead, resume cost.

    python benchmarks/builder_throughput.py [--tiny | --model DIR] [--num_rows 8] [--max_tokens 32]
        [--batch_size 8] [--concurrency 4] [--skip_server] [--backends_only]
        [--output outputs/builder_throughput.json]

Measures, with the same questions and greedy settings:
1. ``transformers`` backend in process (probe/critique/refine);
2. ``openai`` backend against a real ``transformers serve <model>`` on loopback;
3. the openai client's own overhead per request: requests against an instant local server (its handler
   time subtracted), with and without the builder's per-row checkpoint write + fsync;
4. resume cost after SIGKILL: a build killed mid-critique and rerun (what the rerun spends besides
   generating the missing rows), and the time to open a 100K-row checkpoint.
Without ``--model`` it uses the embedded SmolLM2 when converted (``python -m cgd.demo.embedded``), else a tiny
random model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from datasets_builders.backends.base import Request, Sampling
from datasets_builders.backends.openai_backend import OpenAIBackend
from datasets_builders.build_cgd import Builder
from datasets_builders.checkpoint import StageCheckpoint
from datasets_builders.config import parse_args

STAGES = ("probe", "critique", "refine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_questions(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"question": f"Tom has {i + 3} apples and buys {2 * i + 1} more. How many apples does he have now?", "answer": str(3 * i + 4)}) + "\n" for i in range(n))
    )  # fmt: skip
    return path


def build_args(questions: Path, model: str, out: Path, max_tokens: int, *extra: str) -> list[str]:
    args = ["--source", str(questions), "--student_model", model, "--teacher_model", model, "--output_dir", str(out)]
    args += ["--progress", "false", "--filter_unparsed", "false", "--filter_empty", "false"]
    args += ["--filter_truncated", "false"]
    for stage in STAGES:
        args += [f"--{stage}_max_tokens", str(max_tokens)]
    return [*args, *extra]


def build(questions: Path, model: str, out: Path, max_tokens: int, *extra: str) -> dict:
    """Run one build in this process and summarize its report."""
    return summarize(Builder(parse_args(build_args(questions, model, out, max_tokens, *extra))).run())


def summarize(report: dict) -> dict:
    """Per-stage and whole-build rows/s and tokens/s of this run (generation time only, model load excluded)."""
    runs = report["this_run"]  # what this process did; the benchmark's builds start from nothing
    wall = sum(runs[s]["wall_s"] for s in STAGES)
    rows = sum(runs[s]["requests"] for s in STAGES)
    tokens = sum(runs[s]["completion_tokens"] for s in STAGES)
    return {
        "rows": report["output"]["rows"],
        "generations": rows,
        "generated_tokens": tokens,
        "generation_wall_s": round(wall, 2),
        "load_s": round(sum(runs[s]["load_s"] for s in STAGES), 2),
        "generations_per_s": round(rows / wall, 3),
        "dataset_rows_per_s": round(report["output"]["rows"] / wall, 3),
        "tokens_per_s": round(tokens / wall, 1),
        "per_stage_tokens_per_s": {s: round(runs[s]["completion_tokens"] / runs[s]["wall_s"], 2) for s in STAGES},
    }


def bench_transformers(questions: Path, model: str, tmp: Path, max_tokens: int, batch_size: int) -> dict:
    extra = ("--backend", "transformers", "--device", "cpu", "--batch_size", str(batch_size))
    return build(questions, model, tmp / "transformers", max_tokens, *extra)


def start_server(model: str, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or "transformers"
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [exe, "serve", model, "--host", "127.0.0.1", "--port", str(port)],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
        if time.perf_counter() - start > 300:
            proc.kill()
            raise RuntimeError("transformers serve did not start in 300 s")
    return proc, f"http://127.0.0.1:{port}/v1", time.perf_counter() - start


def bench_openai_server(questions: Path, model: str, tmp: Path, max_tokens: int, concurrency: int) -> dict:
    proc, url, startup = start_server(model, tmp / "serve.log")
    try:
        # One warm-up request loads the model in the server (the build then measures steady state).
        OpenAIBackend(model, url, max_retries=0).generate(
            [Request("warm", "hi")], Sampling(max_tokens=4), lambda r, c: None
        )
        extra = ("--backend", "openai", "--base_url", url, "--max_concurrency", str(concurrency))
        result = build(questions, model, tmp / "openai", max_tokens, *extra)
        result["server_startup_s"] = round(startup, 1)
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class InstantServer:
    """Answers every chat completion at once; records its own handler time."""

    def __init__(self) -> None:
        self.handler_s = 0.0
        self.calls = 0
        outer = self
        payload = json.dumps(
            {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok\nConclusion: right"}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}
        ).encode()  # fmt: skip

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def do_POST(self):
                t0 = time.perf_counter()
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                outer.handler_s += time.perf_counter() - t0
                outer.calls += 1

        ThreadingHTTPServer.request_queue_size = 256  # the default backlog of 5 refuses concurrent connects
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_client_overhead(tmp: Path, num_requests: int = 300) -> dict:
    server = InstantServer()
    results = {}
    try:
        question = "Tom has 3 apples and buys 5 more. How many apples does he have now? " * 4
        requests = [Request(f"r{i}", question) for i in range(num_requests)]
        sampling = Sampling(max_tokens=16)
        cases = ((1, None), (1, 1.0), (1, 0.0), (16, None))  # (concurrency, checkpoint fsync interval)
        for concurrency, fsync_interval in cases:
            checkpointed = fsync_interval is not None
            backend = OpenAIBackend("m", server.url, max_concurrency=concurrency, max_retries=2)
            checkpoint = StageCheckpoint(tmp / f"overhead-{concurrency}-{fsync_interval}.jsonl", fsync_interval or 0.0)

            def on_result(request, completions, _cp=checkpoint, _on=checkpointed):
                if _on:
                    _cp.append({"id": request.id, "outputs": [c.__dict__ for c in completions]})

            backend.generate(requests[:20], sampling, lambda r, c: None)  # warm-up: imports, connection pool
            server.handler_s, server.calls = 0.0, 0
            start = time.perf_counter()
            backend.generate(requests, sampling, on_result)
            wall = time.perf_counter() - start
            checkpoint.close()
            key = f"concurrency_{concurrency}" + (
                f"_checkpoint_fsync_every_{fsync_interval:g}s" if checkpointed else ""
            )
            results[key] = {
                "requests": num_requests,
                "wall_s": round(wall, 3),
                "requests_per_s": round(num_requests / wall, 1),
                "ms_per_request": round(1000 * wall / num_requests, 3),
                "client_overhead_ms_per_request": round(1000 * (wall - server.handler_s) / num_requests, 3)
                if concurrency == 1
                else None,
                "server_handler_ms_per_request": round(1000 * server.handler_s / num_requests, 3),
            }
    finally:
        server.close()
    return results


def bench_resume(questions: Path, model: str, tmp: Path, max_tokens: int) -> dict:
    out = tmp / "resume"
    shard = out / "checkpoints" / "shard-00000-of-00001"
    args = build_args(
        questions, model, out, max_tokens, "--backend", "transformers", "--device", "cpu", "--batch_size", "1"
    )
    cmd = [sys.executable, "-m", "datasets_builders.build_cgd", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    crit = shard / "critique.jsonl"
    while not crit.exists() or len(crit.read_bytes().splitlines()) < 2:
        if proc.poll() is not None:
            raise RuntimeError("the build ended before it could be killed")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(crit.read_bytes().splitlines())
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rerun = time.perf_counter() - start
    report = json.loads((out / "build_report.json").read_text())
    this_run = report["this_run"]
    generation = sum(this_run[s]["wall_s"] for s in STAGES)
    load = sum(this_run[s]["load_s"] for s in STAGES)

    big = tmp / "big.jsonl"
    record = {"outputs": [{"text": "x" * 2000, "finish_reason": "stop", "num_tokens": 500, "prompt_tokens": 300}]}
    with open(big, "w") as f:
        for i in range(100_000):
            f.write(json.dumps({"id": f"{i:016x}", **record}) + "\n")
        f.write('{"id": "torn", "outp')
    start = time.perf_counter()
    cp = StageCheckpoint(big)
    open_s = time.perf_counter() - start
    return {
        "rows": report["output"]["rows"],
        "critiques_done_before_kill": done,
        "requests_after_resume": {s: this_run[s]["requests"] for s in STAGES},
        "rerun_wall_s": round(rerun, 2),
        "rerun_generation_s": round(generation, 2),
        "rerun_model_load_s": round(load, 2),
        "rerun_overhead_s": round(rerun - generation - load, 2),
        "open_100k_row_checkpoint_s": round(open_s, 2),
        "checkpoint_100k_size_mb": round(big.stat().st_size / 1e6, 1),
        "torn_bytes_discarded": cp.torn_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir (default: embedded SmolLM2, else tiny)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random test model")
    parser.add_argument("--num_rows", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--skip_server", action="store_true")
    parser.add_argument("--backends_only", action="store_true", help="skip the client-overhead and resume parts")
    parser.add_argument("--output", default="outputs/builder_throughput.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    tmp = Path(tempfile.mkdtemp(prefix="cgd-builder-bench-"))
    model = args.model
    if model is None and not args.tiny:
        from cgd.demo import embedded

        if embedded.is_converted():
            model = str(embedded.model_dir())
    if model is None:
        from cgd.testing import save_tiny_checkpoint

        model = str(save_tiny_checkpoint(tmp / "tiny"))
    questions = write_questions(tmp / "questions.jsonl", args.num_rows)
    import torch

    results = {
        "model": model,
        "num_rows": args.num_rows,
        "max_tokens": args.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    results["transformers"] = bench_transformers(questions, model, tmp, args.max_tokens, args.batch_size)
    print(json.dumps({"transformers": results["transformers"]}, indent=2), flush=True)
    if not args.skip_server:
        results["openai_vs_transformers_serve"] = bench_openai_server(
            questions, model, tmp, args.max_tokens, args.concurrency
        )
        print(json.dumps({"openai": results["openai_vs_transformers_serve"]}, indent=2), flush=True)
    if not args.backends_only:
        results["openai_client_overhead"] = bench_client_overhead(tmp)
        print(json.dumps({"client_overhead": results["openai_client_overhead"]}, indent=2), flush=True)
        results["resume_after_sigkill"] = bench_resume(questions, model, tmp, args.max_tokens)
        print(json.dumps({"resume": results["resume_after_sigkill"]}, indent=2), flush=True)
    results["load_average_end"] = os.getloadavg()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
