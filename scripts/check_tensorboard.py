#!/usr/bin/env python3
"""Starts the real TensorBoard on a Cria sweep directory and checks what it serves.

    python scripts/check_tensorboard.py runs/<experiment>/<stamp> [--timeout SECONDS]

TensorBoard runs from this interpreter's `tensorboard` package, on 127.0.0.1 with a
port the kernel picks, and is stopped at the end. Through its HTTP API (the routes the
web app calls) the script checks, for every trial in sweep.json:

- HParams: the experiment lists the sweep's hyperparameters with domains holding every
  trial's value, and the metrics; one session group per trial, status success, with its
  hyperparameter values and final metrics equal to the trial's own files;
- Scalars: `<trial>/train` and `<trial>/validation` carry Keras's `epoch_*` tags, one
  point per epoch, equal to metrics.jsonl (float32, as event files store them);
- Text: `<trial>/train` marks the fine-tune start at its epoch.

Exit status 0 when all hold; otherwise 1, with every failure listed.
"""
import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
TRAIN_TAGS = {"epoch_loss", "epoch_accuracy", "epoch_keras_accuracy", "epoch_learning_rate"}
VALIDATION_TAGS = {"epoch_loss", "epoch_accuracy", "epoch_keras_accuracy"}


def float32_equal(served, expected):
    """Event files hold float32: one rounding of the double, at most 2^-24 relative."""
    if expected is None or served is None:
        return served is None and expected is None
    if isinstance(expected, str):  # metrics.jsonl spells non-finite values as strings
        expected = float(expected)
    if math.isnan(expected):
        return isinstance(served, str) or math.isnan(served)
    return abs(served - expected) <= 2.0 ** -24 * abs(expected) + 1e-45


class TensorBoard:
    def __init__(self, logdir, timeout):
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "cria-tensorboard-%d.log" % os.getpid()), "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1", "--port", "0",
             "--reload_interval", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = None
        deadline = time.time() + timeout
        while time.time() < deadline and self.base is None:
            if self.process.poll() is not None:
                raise SystemExit("tensorboard exited with %s:\n%s" % (self.process.returncode, self.output()))
            match = re.search(r"at (http://127\.0\.0\.1:\d+/)", self.output())
            if match:
                self.base = match.group(1)
            time.sleep(0.2)
        if self.base is None:
            raise SystemExit("tensorboard did not start within %ds:\n%s" % (timeout, self.output()))

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, route, **query):
        url = self.base + route + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def post(self, route, body):
        request = urllib.request.Request(self.base + route, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


def read_trials(sweep_dir):
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        sweep = json.load(f)
    trials = []
    for trial in sweep["trials"]:
        directory = os.path.join(sweep_dir, trial["id"])
        with open(os.path.join(directory, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(directory, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        trials.append({"id": trial["id"], "parameters": trial["parameters"], "seed": trial["seed"],
                       "summary": summary, "records": records})
    return sweep, trials


def hparam_matches(served, expected, data_type):
    if data_type == "DATA_TYPE_FLOAT64":
        return isinstance(served, (int, float)) and abs(served - expected) <= 1e-12 * abs(expected)
    if data_type == "DATA_TYPE_BOOL":
        return served == expected
    # STRING holds the values as trial ids print them ("none" beside "100", "1e-4").
    if isinstance(expected, str):
        return served == expected
    try:
        return float(served) == float(expected)
    except (TypeError, ValueError):
        return False


def check(tb, sweep, trials, timeout):
    failures = []
    expected_runs = {"."} | {t["id"] + suffix for t in trials for suffix in ("", "/train", "/validation")}

    # TensorBoard loads event files in the background: wait until every run and session is in.
    deadline = time.time() + timeout
    while True:
        runs = set(tb.get("data/runs"))
        groups = tb.post("data/plugin/hparams/session_groups", {
            "startIndex": 0, "sliceSize": 10000, "allowedStatuses": STATUSES, "aggregationType": "AGGREGATION_AVG"})
        groups = groups.get("sessionGroups", [])
        done = [g for g in groups if all(s.get("status") == "STATUS_SUCCESS" for s in g["sessions"])]
        if expected_runs <= runs and len(done) >= len(trials):
            break
        if time.time() > deadline:
            return ["after %ds TensorBoard has %d of %d runs (missing %s) and %d finished session groups of %d"
                    % (timeout, len(expected_runs & runs), len(expected_runs), sorted(expected_runs - runs)[:5],
                       len(done), len(trials))]
        time.sleep(0.5)

    # HParams: the experiment.
    experiment = tb.post("data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment.get("hparamInfos", [])}
    keys = list(sweep.get("parameter_keys", []))
    if sweep.get("repeats", 1) > 1 or not keys:
        keys.append("seed")
    if set(infos) != set(keys):
        failures.append("experiment hparams %s, expected %s" % (sorted(infos), sorted(keys)))
    metric = sweep.get("metric", "best_val_accuracy")
    metric_names = {(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment.get("metricInfos", [])}
    wanted_metrics = {("", metric), ("validation", "epoch_accuracy"), ("validation", "epoch_loss"),
                      ("train", "epoch_accuracy"), ("train", "epoch_loss")}
    if not wanted_metrics <= metric_names:
        failures.append("experiment metrics %s lack %s" % (sorted(metric_names), sorted(wanted_metrics - metric_names)))

    by_name = {g["name"]: g for g in groups}
    for trial in trials:
        tid, summary, records = trial["id"], trial["summary"], trial["records"]
        values = dict(trial["parameters"])
        if "seed" in keys:
            values["seed"] = trial["seed"]
        group = by_name.get(tid)
        if group is None:
            failures.append("%s: no session group (have %s)" % (tid, sorted(by_name)[:5]))
            continue
        # Hyperparameter values, and each inside its declared domain.
        for name, expected in values.items():
            info = infos.get(name, {})
            served = group["hparams"].get(name)
            if not hparam_matches(served, expected, info.get("type")):
                failures.append("%s: hparam %s = %r, expected %r" % (tid, name, served, expected))
            domain = info.get("domainDiscrete")
            if domain is not None and not any(hparam_matches(v, expected, info.get("type")) for v in domain):
                failures.append("%s: %s = %r is outside the domain %r" % (tid, name, expected, domain))
            interval = info.get("domainInterval")
            if interval is not None and not interval["minValue"] <= expected <= interval["maxValue"]:
                failures.append("%s: %s = %r is outside %r" % (tid, name, expected, interval))
        sessions = group["sessions"]
        if [s["name"] for s in sessions] != [tid] or sessions[0].get("status") != "STATUS_SUCCESS":
            failures.append("%s: sessions %s" % (tid, [(s["name"], s.get("status")) for s in sessions]))
        # Final metrics: the last epoch's values and the sweep metric from summary.json.
        served = {(m["name"].get("group", ""), m["name"]["tag"]): m["value"] for m in group.get("metricValues", [])}
        last = records[-1]
        expected_metrics = {("validation", "epoch_accuracy"): last.get("val_accuracy"),
                            ("validation", "epoch_loss"): last.get("val_loss"),
                            ("train", "epoch_accuracy"): last["accuracy"], ("train", "epoch_loss"): last["loss"]}
        if metric in ("best_val_accuracy", "final_val_accuracy", "final_val_loss", "final_accuracy", "frozen_phase_val_accuracy"):
            expected_metrics[("", metric)] = summary.get(metric)
        for key, expected in expected_metrics.items():
            if expected is None:
                continue
            if not float32_equal(served.get(key), expected):
                failures.append("%s: metric %s = %r, expected %r" % (tid, "/".join(key), served.get(key), expected))

        # Scalars: Keras's tags in both runs, every epoch, equal to metrics.jsonl.
        tags = tb.get("data/plugin/scalars/tags")
        if set(tags.get(tid + "/train", {})) != TRAIN_TAGS:
            failures.append("%s/train: tags %s" % (tid, sorted(tags.get(tid + "/train", {}))))
        if set(tags.get(tid + "/validation", {})) != VALIDATION_TAGS:
            failures.append("%s/validation: tags %s" % (tid, sorted(tags.get(tid + "/validation", {}))))
        for run, tag, key in [("train", "epoch_loss", "loss"), ("train", "epoch_accuracy", "accuracy"),
                              ("train", "epoch_learning_rate", "learning_rate"), ("validation", "epoch_loss", "val_loss"),
                              ("validation", "epoch_accuracy", "val_accuracy")]:
            points = tb.get("data/plugin/scalars/scalars", run=tid + "/" + run, tag=tag)
            steps = [int(p[1]) for p in points]
            if steps != [r["epoch"] for r in records]:
                failures.append("%s/%s %s: steps %s, epochs %s" % (tid, run, tag, steps, [r["epoch"] for r in records]))
            for point, record in zip(points, records):
                if not float32_equal(point[2], record[key]):
                    failures.append("%s/%s %s at %d: %r, expected %r" % (tid, run, tag, point[1], point[2], record[key]))

        # Text: the fine-tune start at its epoch.
        start = summary.get("fine_tune_start_epoch")
        if start is not None:
            texts = tb.get("data/plugin/text/text", run=tid + "/train", tag="phase")
            marked = [t["step"] for t in texts if "Start Fine Tuning" in t["text"]]
            if marked != [start]:
                failures.append("%s/train: 'Start Fine Tuning' at steps %s, expected [%d]" % (tid, marked, start))
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for TensorBoard to start and load")
    args = parser.parse_args()
    sweep, trials = read_trials(args.sweep_dir)
    tb = TensorBoard(args.sweep_dir, args.timeout)
    try:
        failures = check(tb, sweep, trials, args.timeout)
    finally:
        tb.stop()
    if failures:
        print("tensorboard check failed for %s:" % args.sweep_dir, file=sys.stderr)
        for failure in failures:
            print("  " + failure, file=sys.stderr)
        sys.exit(1)
    print("tensorboard: %d trial(s) in the HParams view with their values and metrics; train/validation scalars and "
          "fine-tune markers as served match the trial files" % len(trials))


if __name__ == "__main__":
    main()
