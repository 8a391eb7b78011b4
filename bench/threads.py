"""Milliseconds per training step on one thread and on PyTorch's default, on a quiet machine and with one core busy.

    .venv/bin/python bench/threads.py [--repeats 3]

A learner's machine is rarely quiet. PyTorch splits each large operation between as many threads as the machine has
cores, and each operation waits for its slowest thread: when another program holds a core, the thread that shares it
sets the pace. This measures what that costs the fast resnet18 (one step, batch 192) and the MLP (40 steps, batch
256), and what one thread instead saves. The busy core is a loop of this script's own, stopped at the end. Medians of
the repeats, in turns; not part of `make test` (no pass/fail depends on a clock).
"""
import argparse, os, statistics, subprocess, sys, time, warnings
from contextlib import contextmanager

import torch
from torch import nn

warnings.filterwarnings('ignore', message='.*torch.jit.script.*deprecated')  # noise from fastai's import
from mnist37.fast import bytes_to_input, fast_resnet18, fastai_adamw, sample_bytes
from mnist37.models import simple_net


def steps():
    "`{name: (one step, how many of them make a measurement)}`, on the sample's first images."
    train_x, train_y, _, _ = sample_bytes()
    torch.manual_seed(42)
    resnet = fast_resnet18(); opt = fastai_adamw(resnet.parameters(), 1e-3)
    rx, ry = bytes_to_input(train_x[:192]), train_y[:192]
    def resnet_step():
        nn.functional.cross_entropy(resnet(rx), ry).backward(); opt.step(); opt.zero_grad()
    mlp = simple_net(); sgd = torch.optim.SGD(mlp.parameters(), lr=0.1)
    mx, my = train_x[:256].view(256, -1).float() / 255, train_y[:256].float().unsqueeze(1)
    def mlp_steps():
        for _ in range(40):
            p = mlp(mx).sigmoid(); torch.where(my == 1, 1 - p, p).mean().backward(); sgd.step(); sgd.zero_grad()
    return {'resnet18, one step': (resnet_step, 3), 'mlp, 40 steps': (mlp_steps, 5)}


@contextmanager
def busy_core():
    "One core kept busy by a loop of our own for the block."
    p = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try: time.sleep(1); yield
    finally: p.kill(); p.wait()


def measure(fits, threads, repeats):
    "`{(name, threads): median ms}`, each thread count in turn on each repeat."
    times = {(name, t): [] for name in fits for t in threads}
    for _ in range(repeats):
        for name, (f, n) in fits.items():
            for t in threads:
                torch.set_num_threads(t); f()   # one warm-up at this thread count
                start = time.perf_counter()
                for _ in range(n): f()
                times[name, t].append((time.perf_counter() - start) / n * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    default = torch.get_num_threads()
    threads = sorted({1, default})
    fits = steps()
    quiet = measure(fits, threads, a.repeats)
    with busy_core(): busy = measure(fits, threads, a.repeats)
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, default {default} threads; ms per measurement, medians of {a.repeats}")
    print(f"{'':20}" + ''.join(f"{f'{t} thread' + 's'*(t > 1):>12}{'(busy)':>9}" for t in threads))
    for name in fits:
        print(f"{name:20}" + ''.join(f"{quiet[name, t]:12.1f}{busy[name, t]:9.1f}" for t in threads))


if __name__ == '__main__': main()
