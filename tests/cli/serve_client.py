"""The client side of tests/cli/serve.sh: drives a running `wattwise serve` over loopback with the
standard library only (threads and http.client), every wait bounded. One mode per step:

  routes URL REF.jsonl TEXTS.txt   each route and error code; concurrent clients get predict's labels
                                   and scores; batching batches; per-request joules sum to the total
  soak URL PID SECONDS             concurrency 16 for SECONDS: zero errors, RSS growth under 5%
  drain URL PID                    SIGTERM under load: every request sent is answered or refused
                                   before admission; prints the 200s for the server's own count
  limits URL                       503 with Retry-After when the queue is full, 504 on timeout
Exits non-zero after printing FAIL lines."""
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

failures = 0


def check(what, ok, detail=""):
    global failures
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else f" ({detail})"), flush=True)
    if not ok:
        failures += 1


def request(url, method, path, body=None, headers=None, timeout=10):
    """(status, headers dict lower-cased, body bytes) on a fresh connection."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = {"Content-Type": "application/json", "Connection": "close"}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def metrics(url):
    status, _, body = request(url, "GET", "/metrics")
    assert status == 200, status
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def run_threads(n, fn, seconds_limit):
    threads = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.time() + seconds_limit
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    return not any(t.is_alive() for t in threads)


def error_of(status, body):
    try:
        return json.loads(body)
    except ValueError:
        return {"unparsable": body[:200].decode(errors="replace"), "status": status}


def routes(url, ref_path, texts_path):
    texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8")]
    ref = [json.loads(line) for line in open(ref_path)]
    check("predict's reference has one line per text", len(ref) == len(texts), f"{len(ref)} vs {len(texts)}")

    status, _, body = request(url, "GET", "/health")
    check("GET /health: 200", status == 200 and json.loads(body)["status"] == "ok", f"{status} {body[:100]}")
    status, _, body = request(url, "GET", "/info")
    info = json.loads(body) if status == 200 else {}
    check("GET /info: model, precision, device, limits", status == 200 and info.get("model_dtype") == "fp32"
          and info.get("device") == "cpu" and info.get("max_input_length") == 64 and info.get("max_batch_requests") == 8
          and "id2label" in info.get("model_type", {}).get("classifier", {}), info)

    # --- refusals: status, JSON body, the field named ---
    def refused(what, body, status_wanted, field=None, raw=False, headers=None):
        status, h, b = request(url, "POST", "/predict", body if raw else body, headers)
        e = error_of(status, b)
        ok = status == status_wanted and "error" in e and (field is None or e.get("field") == field)
        check(f"{what}: {status_wanted}" + (f" naming {field}" if field else ""), ok, f"{status} {e}")
    refused("malformed JSON", b"{\"inputs\": ", 400, raw=True)
    refused("no inputs", {"text": "a"}, 400, "text")
    refused("missing inputs", {"truncate": True}, 400, "inputs")
    refused("inputs a number", {"inputs": 5}, 400, "inputs")
    refused("a batch entry not a list", {"inputs": [["a"], "b"]}, 400, "inputs[1]")
    refused("truncate not a boolean", {"inputs": "a", "truncate": "yes"}, 400, "truncate")
    refused("invalid UTF-8 text", b'{"inputs": "\xff\xfe"}', 400, raw=True)
    refused("more inputs than --max-batch", {"inputs": [["a"]] * 9}, 413, "inputs")
    refused("body over --max-body-bytes", {"inputs": "good " * 2000}, 413)
    long_text = " ".join(["good film"] * 60)
    refused("input over the model's length, truncate false", {"inputs": [["a"], [long_text]]}, 413, "inputs[1]")
    status, _, body = request(url, "POST", "/predict", {"inputs": long_text, "truncate": True})
    check("the same input with truncate true: 200", status == 200, f"{status} {body[:200]}")
    status, _, body = request(url, "GET", "/nowhere")
    check("unknown route: 404 with a JSON error", status == 404 and "error" in error_of(status, body), f"{status} {body}")
    status, _, body = request(url, "GET", "/predict")
    check("GET /predict: 404 or 405", status in (404, 405), status)

    # --- concurrent clients, three request shapes, compared with `wattwise predict` ---
    results = {}
    joules = []
    lock = threading.Lock()
    errors = []

    def client(k):
        # Thread k asks for texts k, k+16, ...: alternately one text and a batch of two.
        mine = list(range(k, len(texts), 16))
        i = 0
        while i < len(mine):
            try:
                if i + 1 < len(mine) and i % 4 == 2:
                    idx = mine[i:i + 2]
                    status, h, b = request(url, "POST", "/predict", {"inputs": [[texts[j]] for j in idx]})
                    answers = json.loads(b) if status == 200 else None
                else:
                    idx = [mine[i]]
                    status, h, b = request(url, "POST", "/predict", {"inputs": texts[mine[i]]})
                    answers = [json.loads(b)] if status == 200 else None
                with lock:
                    if status != 200:
                        errors.append((status, b[:200]))
                    else:
                        for j, a in zip(idx, answers):
                            results[j] = a
                        joules.append(float(h["x-energy-joules"]))
                        if not h.get("x-energy-provenance"):
                            errors.append("no X-Energy-Provenance")
                i += len(idx)
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                with lock:
                    errors.append(repr(e))
                i += 1

    before = metrics(url)
    finished = run_threads(16, client, 30)
    check("16 concurrent clients finish within 30 s", finished)
    check("no errors under concurrency", not errors, errors[:3])
    check("every text answered", len(results) == len(texts), f"{len(results)} of {len(texts)}")
    worst = 0.0
    labels_match = True
    for j, answer in results.items():
        r = ref[j]
        best = answer[0]
        labels_match &= best["label"] == r["label_name"]
        probs = {f"LABEL_{c}": p for c, p in enumerate(r["probs"])}
        for entry in answer:
            worst = max(worst, abs(entry["score"] - probs[entry["label"]]))
    check("same labels as wattwise predict", labels_match)
    check(f"same scores as wattwise predict (worst difference {worst:.2e} <= 1e-4)", worst <= 1e-4)
    after = metrics(url)
    batches = after["wattwise_batch_size_count"] - before.get("wattwise_batch_size_count", 0)
    singles = after['wattwise_batch_size_bucket{le="1"}'] - before.get('wattwise_batch_size_bucket{le="1"}', 0)
    check(f"batching batches: {int(batches - singles)} of {int(batches)} forward passes held more than one input",
          batches > 0 and batches - singles > 0, f"{batches} batches, {singles} of size 1")
    served = after['wattwise_requests_total{route="/predict",status="200"}']
    check("metrics count the 200s", served >= len(joules), served)
    total_requests = after["wattwise_request_energy_joules_total"]
    total_batches = after["wattwise_batch_energy_joules_total"]
    # Every batch's requests were answered 200 (the refusals never reached a batch), so the per-request
    # shares (this phase's and the earlier truncate request's) add up to the batches' energy.
    check(f"per-request joules sum to the server's batch total ({total_requests:.6g} vs {total_batches:.6g} J)",
          total_batches > 0 and abs(total_requests - total_batches) <= 1e-6 * total_batches + 1e-9)
    phase = after["wattwise_request_energy_joules_total"] - before["wattwise_request_energy_joules_total"]
    check(f"the X-Energy-Joules headers add up to the metrics' increase ({sum(joules):.6g} vs {phase:.6g} J)",
          abs(sum(joules) - phase) <= 1e-6 * phase + 1e-9)
    check("metrics: latency and queue histograms, tokens, server energy",
          after['wattwise_request_duration_seconds_count{route="/predict"}'] > 0
          and after["wattwise_queue_duration_seconds_count"] > 0 and after["wattwise_request_tokens_total"] > 0
          and after["wattwise_server_energy_joules_total"] >= total_batches
          and after['wattwise_requests_total{route="/predict",status="400"}'] >= 5
          and after['wattwise_requests_total{route="/predict",status="413"}'] >= 3, "")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load(url, seconds, counts, lock, stop=None):
    def client(k):
        texts = ["a good film", "the bad film and the good film", "bad", "good good good film . the end , the start"]
        n = 0
        end = time.time() + seconds
        while time.time() < end and not (stop and stop.is_set()):
            n += 1
            try:
                status, _, _ = request(url, "POST", "/predict", {"inputs": texts[(k + n) % len(texts)]}, timeout=15)
                key = str(status)
            except (ConnectionError, http.client.RemoteDisconnected, OSError) as e:
                key = type(e).__name__
            with lock:
                counts[key] = counts.get(key, 0) + 1
            if key != "200" and stop is not None:
                return  # shutting down: this client is done
    return client


def soak(url, pid, seconds):
    counts, lock = {}, threading.Lock()
    warm = time.time() + 3
    finished = run_threads(16, load(url, 3, counts, lock), 20)
    start_rss = rss_kib(pid)
    counts.clear()
    finished &= run_threads(16, load(url, seconds, counts, lock), seconds + 20)
    end_rss = rss_kib(pid)
    growth = (end_rss - start_rss) / start_rss
    total = sum(counts.values())
    check("soak clients finish in time", finished and time.time() > warm)
    check(f"soak: {total} requests in {seconds} s at concurrency 16, all 200", counts.get("200", 0) == total and total > 0,
          counts)
    check(f"soak: resident memory {start_rss} -> {end_rss} KiB ({100 * growth:+.2f}%, under 5%)", growth < 0.05)


def drain(url, pid):
    counts, lock, stop = {}, threading.Lock(), threading.Event()
    t = threading.Thread(target=lambda: run_threads(8, load(url, 20, counts, lock, stop), 25), daemon=True)
    t.start()
    time.sleep(1.5)
    os.kill(pid, signal.SIGTERM)
    t.join(25)
    check("clients under SIGTERM finish within 25 s", not t.is_alive())
    bad = {k: v for k, v in counts.items() if k != "200" and not k.endswith("Error") and k != "RemoteDisconnected"}
    check("under SIGTERM every answer was 200; the rest were refused connections", not bad, counts)
    print(f"drain-200s {counts.get('200', 0)}", flush=True)


def limits(url):
    out = {}

    def slow():
        t0 = time.time()
        out["first"] = request(url, "POST", "/predict", {"inputs": "a good film"})
        out["first_s"] = time.time() - t0
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    time.sleep(0.1)
    status, h, body = request(url, "POST", "/predict", {"inputs": "the bad film"})
    check("queue full: 503 with Retry-After and a JSON error", status == 503 and "retry-after" in h
          and error_of(status, body).get("error_type") == "Overloaded", f"{status} {h} {body[:200]}")
    t.join(10)
    status = out.get("first", (0,))[0]
    check("no answer within --timeout-ms: 504", status == 504 and out["first_s"] < 1.4, f"{status} {out.get('first_s')}")
    m = metrics(url)
    check("metrics count the 503 and the 504", m.get('wattwise_requests_total{route="/predict",status="503"}') == 1
          and m.get('wattwise_requests_total{route="/predict",status="504"}') == 1)


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "routes":
        routes(url, sys.argv[3], sys.argv[4])
    elif mode == "soak":
        soak(url, int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "drain":
        drain(url, int(sys.argv[3]))
    elif mode == "limits":
        limits(url)
    sys.exit(1 if failures else 0)
