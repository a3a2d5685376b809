#!/usr/bin/env python3
"""Cold start of one function binary under the `cargo lambda watch` Runtime API emulator.

    scripts/cold-start.py BINARY FUNCTION_NAME EVENT [RUNS]

Starts `cargo lambda watch --only-lambda-apis`, then RUNS times: queues one invocation of EVENT,
starts a fresh BINARY process pointed at the emulator, and times process start -> the
function's "cold start finished" log line (init) and -> the invocation's response (first
response). A fake OpenAI-compatible LLM answers on loopback (TA_BASE_URL); configs are
examples/agents. Prints the medians. Measures this machine, not Lambda's.
"""
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeLlm(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    for _ in range(1200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit("cargo lambda watch exited")
            time.sleep(0.1)
    sys.exit("cargo lambda watch did not listen")


def main():
    binary, name, event = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    payload = open(event, "rb").read()
    llm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLlm)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    port = free_port()
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1",
         "--invoke-port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt/{name}",
               AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", RUST_LOG="info",
               TA_SERVICE_CONFIG=os.path.join(ROOT, "examples/agents"),
               TA_BASE_URL=f"http://127.0.0.1:{llm.server_address[1]}/v1", TA_API_KEY="sk-cold-start",
               TEAL_BUNDLED_FS_URL="http://127.0.0.1:9/mcp", TA_API_KEYS_SECRET="TA_API_KEYS", TA_SECRETS_BACKEND="env",
               TA_API_KEYS='{"me":{"key":"teal-local-test-key-0001","agents":["*"]}}')
    inits, firsts = [], []
    try:
        wait_port(port, watch)
        for _ in range(runs):
            result = {}

            def invoke():
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations", data=payload,
                    method="POST")
                with urllib.request.urlopen(req, timeout=60) as r:
                    result["body"] = r.read()
                result["at"] = time.perf_counter()

            caller = threading.Thread(target=invoke)
            caller.start()
            time.sleep(0.2)  # let the emulator queue the invocation before the process exists
            t0 = time.perf_counter()
            fn = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            init = None
            for line in fn.stdout:
                if "cold start finished" in line:
                    init = time.perf_counter() - t0
                    break
            caller.join()
            fn.kill()
            fn.wait()
            if init is None or "body" not in result:
                sys.exit("the function did not start or answer")
            inits.append(init * 1000)
            firsts.append((result["at"] - t0) * 1000)
        try:
            last = f"statusCode {json.loads(result['body']).get('statusCode')}"
        except ValueError:  # a streamed response: the function's body itself
            last = f"streamed, {len(result['body'])} bytes: {result['body'][:40]!r}"
        print(f"{name}: {runs} cold starts, last {last}")
        print(f"  process start -> init done     median {statistics.median(inits):6.1f} ms  (min {min(inits):.1f}, max {max(inits):.1f})")
        print(f"  process start -> first response median {statistics.median(firsts):6.1f} ms  (min {min(firsts):.1f}, max {max(firsts):.1f})")
    finally:
        os.killpg(watch.pid, 15)
        watch.wait()


if __name__ == "__main__":
    main()
