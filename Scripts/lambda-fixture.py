#!/usr/bin/env python3
"""A substitute for AWS Lambda, for tests only: its Invoke API and its Runtime API, written from AWS's
published protocol, on one loopback port. Not AWS: no IAM, no signatures checked, one function, one
sandbox (execution environment) at a time.

    lambda-fixture.py [--timeout SECONDS] [--throttle N] -- FUNCTION-EXECUTABLE [ARGS...]

Prints "LAMBDA_FIXTURE_PORT <port>" when it listens. The function's process is started on the first
invocation (a cold start), with this process's environment plus AWS_LAMBDA_RUNTIME_API, and reused: after
each response it is frozen with SIGSTOP and thawed with SIGCONT by the next invocation, as Lambda freezes an
execution environment between invocations.

- POST /2015-03-31/functions/<name>/invocations (X-Amz-Invocation-Type: RequestResponse, the default, or
  Event): the first N (--throttle) answer 429 TooManyRequestsException; then RequestResponse answers 200 with the function's response, or 200 with X-Amz-Function-Error:
  Unhandled and the error it reported (an invocation error, or its init error); Event answers 202 at once.
- GET /2018-06-01/runtime/invocation/next, POST .../invocation/<id>/response, .../<id>/error and
  /2018-06-01/runtime/init/error: the Runtime API, with Lambda-Runtime-Aws-Request-Id and
  Lambda-Runtime-Deadline-Ms (when the runtime takes the event, + --timeout) on each event.
- GET /fixture/stats: {"cold_starts", "invocations", "freezes"} as JSON.
"""
import ctypes, json, os, signal, subprocess, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Condition()
events = []          # (request id, payload) waiting for the runtime's next
results = {}         # request id -> (kind, body): kind is "response" or "error"
init_error = None    # the body of an init/error, once reported
process = None
stats = {"cold_starts": 0, "invocations": 0, "freezes": 0, "throttled": 0}
timeout = 30.0
throttle = 0
command = []
port_box = []


spawn_requests = []
spawn_ready = threading.Condition()


def spawner():
    """Starts the function's processes, from a thread that lives as long as this process: each child gets
    PR_SET_PDEATHSIG, which fires when the thread that started it ends, so the function dies with the
    fixture however the fixture ends (never an orphan holding the test's output open)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port_box[0]}", AWS_LAMBDA_FUNCTION_NAME="curtain")
    while True:
        with spawn_ready:
            while not spawn_requests:
                spawn_ready.wait()
            box = spawn_requests.pop(0)
            box.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                        preexec_fn=lambda: libc.prctl(1, signal.SIGKILL)))
            spawn_ready.notify_all()


def ensure_running():
    """Starts the function's process (a cold start) or thaws it."""
    global process, init_error
    if process is None or process.poll() is not None:
        box = []
        with spawn_ready:
            spawn_requests.append(box)
            spawn_ready.notify_all()
            while not box:
                spawn_ready.wait()
        process = box[0]
        init_error = None
        stats["cold_starts"] += 1
    else:
        os.kill(process.pid, signal.SIGCONT)


def freeze():
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGSTOP)
        stats["freezes"] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        if self.path == "/2018-06-01/runtime/invocation/next":
            with lock:
                while not events:
                    lock.wait()
                request_id, payload = events.pop(0)
            # Dated when the runtime takes the event, as Lambda does: a cold start's initialization does not
            # count against the invocation's timeout.
            deadline = int((time.time() + timeout) * 1000)
            self.reply(200, payload, [("Lambda-Runtime-Aws-Request-Id", request_id),
                                      ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                                      ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:local:000000000000:function:curtain"),
                                      ("Content-Type", "application/json")])
        elif self.path == "/fixture/stats":
            with lock:
                self.reply(200, json.dumps(stats).encode())
        else:
            self.reply(404, b'{"message":"not found"}')

    def do_POST(self):
        global init_error
        path = self.path
        body = self.body()
        if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            request_id = str(uuid.uuid4())
            with lock:
                if stats["throttled"] < throttle:
                    stats["throttled"] += 1
                    self.reply(429, b'{"Type":"User","message":"Rate Exceeded."}',
                               [("x-amzn-ErrorType", "TooManyRequestsException"), ("Content-Type", "application/json")])
                    return
                stats["invocations"] += 1
                ensure_running()
                events.append((request_id, body))
                lock.notify_all()
                if kind == "Event":
                    self.reply(202, b"")
                    return
                end = time.time() + timeout + 5
                while request_id not in results and init_error is None and time.time() < end:
                    lock.wait(0.05)
                if request_id in results:
                    outcome, answer = results.pop(request_id)
                elif init_error is not None:
                    outcome, answer = "error", init_error
                else:
                    outcome, answer = "error", b'{"errorMessage":"Task timed out","errorType":"Sandbox.Timedout"}'
            headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
            if outcome == "error":
                headers.append(("X-Amz-Function-Error", "Unhandled"))
            self.reply(200, answer, headers)
        elif path.startswith("/2018-06-01/runtime/invocation/"):
            parts = path.split("/")
            request_id, outcome = parts[-2], parts[-1]
            self.reply(202, b'{"status":"OK"}')
            with lock:
                results[request_id] = (outcome, body)
                lock.notify_all()
                # Frozen until the next invocation, once nothing else waits for it.
                if not events:
                    freeze()
        elif path == "/2018-06-01/runtime/init/error":
            self.reply(202, b'{"status":"OK"}')
            with lock:
                init_error = body
                lock.notify_all()
        else:
            self.reply(404, b'{"message":"not found"}')


def main():
    global timeout, throttle, command
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit("usage: lambda-fixture.py [--timeout SECONDS] [--throttle N] -- FUNCTION-EXECUTABLE [ARGS...]")
    split = args.index("--")
    options, command = args[:split], args[split + 1:]
    while options:
        name, value = options[0], options[1]
        options = options[2:]
        if name == "--timeout":
            timeout = float(value)
        elif name == "--throttle":
            throttle = int(value)
        else:
            sys.exit(f"lambda-fixture.py: unknown option {name}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_box.append(server.server_address[1])
    print(f"LAMBDA_FIXTURE_PORT {port_box[0]}", flush=True)
    # Ends with its standard input (the test closes it), taking the function's process with it.
    threading.Thread(target=spawner, daemon=True).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
