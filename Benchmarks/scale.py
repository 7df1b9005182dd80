#!/usr/bin/env python3
"""Scale benchmark (make bench-scale): Cria's cost per image as the dataset grows.

Fashion-MNIST at 160x160, all 10 classes, one frozen-base epoch (80 % train, 20 % validate)
with 10,000 / 30,000 / 60,000 training images (SIZES), then the alpaca data twice with a
fresh pixel cache (data.cache): the first run builds it, the second opens it.

Per run: wall time, time per image, peak RSS (VmHWM) and peak RssAnon (sampled from
/proc/PID/status every 0.2 s; the kernel keeps no RssAnon high-water mark). Results are
appended as JSON lines to Benchmarks/results/scale.jsonl with the date and the machine.

Environment: CRIA_BIN (default .build/release/cria), SIZES ("10000 30000 60000"),
CRIA_ALPACA_DIR, WEIGHTS (Weights/dog_breed_mobilenetv2.h5), OUT.
"""
import datetime, json, os, platform, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CRIA_BIN", os.path.join(ROOT, ".build/release/cria"))
SIZES = [int(s) for s in os.environ.get("SIZES", "10000 30000 60000").split()]
ALPACA = os.environ.get("CRIA_ALPACA_DIR", os.path.abspath(os.path.join(ROOT, "../shared/data/alpaca")))
WEIGHTS = os.environ.get("WEIGHTS", os.path.join(ROOT, "Weights/dog_breed_mobilenetv2.h5"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "Benchmarks/results/scale.jsonl"))


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    memory = next(int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return {"cpu": model, "cores": os.cpu_count(), "memory_mb": memory, "kernel": platform.release(),
            "load_average_at_start": os.getloadavg()[0]}


def run(config_text, work, name):
    """Runs `cria run` on a config, sampling its memory; returns timings, peaks and stderr."""
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(config_text)
    started = time.time()
    process = subprocess.Popen([BIN, "run", path], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    import threading
    err = []
    reader = threading.Thread(target=lambda: err.append(process.stderr.read()))
    reader.start()
    while process.poll() is None:
        try:
            for line in open(f"/proc/{process.pid}/status"):
                key = line.split(":")[0]
                if key in peaks:
                    peaks[key] = max(peaks[key], int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.2)
    reader.join()
    wall = time.time() - started
    stderr = err[0] if err else ""
    if process.returncode != 0:
        sys.exit(f"{name}: cria run failed ({process.returncode}):\n{stderr[-2000:]}")
    return wall, {k: round(v / 1024, 1) for k, v in peaks.items()}, stderr


def epoch_seconds(work, name):
    runs = os.path.join(work, "runs", name)
    stamp = sorted(os.listdir(runs))[-1]
    trial = os.path.join(runs, stamp, "seed=42")
    with open(os.path.join(trial, "metrics.jsonl")) as f:
        return [json.loads(l)["seconds"] for l in f if l.strip()]


def record(entry):
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "a") as f:
        f.write(json.dumps(entry) + "\n")
    print(json.dumps(entry), flush=True)


def main():
    work = tempfile.mkdtemp(prefix="cria-scale-")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    base = {"date": date, "machine": machine(), "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                                                         capture_output=True, text=True).stdout.strip()}
    for n in SIZES:
        name = f"fashion{n}"
        text = f"""experiment: {{name: {name}, runs_dir: {work}/runs}}
data: {{source: fashion_mnist, limit: {n}, image_size: [160, 160], batch_size: 32, validation_split: 0.2, seed: 42}}
model: {{weights: {WEIGHTS}, head: {{dropout: 0.2, classes: 10}}}}
augment: none
seed: 42
phases:
  - {{name: frozen, epochs: 1, trainable: none, lr: 1.0e-3}}
"""
        wall, peaks, stderr = run(text, work, name)
        seconds = epoch_seconds(work, name)
        record(dict(base, benchmark="scale-fashion-mnist", images=n, image_size=160, epochs=1,
                    # Above the default budget (a quarter of physical memory) the pixels are rendered on demand.
                    streamed=n * 160 * 160 * 3 * 4 > 0.25 * base["machine"]["memory_mb"] * 1048576,
                    wall_seconds=round(wall, 1), epoch_seconds=round(sum(seconds), 1),
                    ms_per_image_wall=round(1000 * wall / n, 2), ms_per_image_epoch=round(1000 * sum(seconds) / n, 2),
                    peak_rss_mb=peaks["VmHWM"], peak_rss_anon_mb=peaks["RssAnon"], peak_rss_file_mb=peaks["RssFile"]))
    if os.path.isdir(ALPACA):
        cache = os.path.join(work, "pixel-cache")
        for attempt in ["build", "reuse"]:
            name = f"alpaca-{attempt}"
            text = f"""experiment: {{name: {name}, runs_dir: {work}/runs}}
data: {{source: directory, directory: {ALPACA}, image_size: [160, 160], batch_size: 32, validation_split: 0.2, seed: 42, cache: {cache}}}
model: {{weights: {WEIGHTS}, head: {{dropout: 0.2, classes: 1}}}}
augment: {{flip: horizontal, rotation: 0.2}}
seed: 42
phases:
  - {{name: frozen, epochs: 1, trainable: none, lr: 1.0e-3}}
"""
            wall, peaks, stderr = run(text, work, name)
            line = next((l for l in stderr.splitlines() if l.startswith("cache:")), "")
            match = re.search(r"in ([0-9.]+) s", line)
            record(dict(base, benchmark="scale-alpaca-cache", attempt=attempt, cache_line=line,
                        data_seconds=float(match.group(1)) if match else None, wall_seconds=round(wall, 1),
                        peak_rss_mb=peaks["VmHWM"], peak_rss_anon_mb=peaks["RssAnon"], peak_rss_file_mb=peaks["RssFile"]))
    print(f"results appended to {OUT}")


if __name__ == "__main__":
    main()
