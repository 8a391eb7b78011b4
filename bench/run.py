"""mnist37 benchmark: the book's pipelines and mnist37's fast paths, side by side in one run.

Usage: MNIST37_DATA=../shared/data .venv/bin/python bench/run.py [--device auto] [--repeats 5] [--resnet-repeats 3]
       [--only data,linear,mlp,resnet18] [--threads N] [--course-log LOG] [--out bench]
Writes bench/results.json and bench/results.md (atomically) for a run on the CPU, and bench/results-cuda.json and
bench/results-cuda.md for one on a CUDA GPU (results-mps.* on a Mac), so each device's latest run stays beside the
other's. Each measurement is repeated and the median kept; the competing versions are interleaved (book, mnist37,
hand, book, ...) so background load hits them alike, and all of them train on the one device."""
import warnings; warnings.filterwarnings('ignore', message='.*torch.jit.script.*deprecated')
import argparse, json, os, platform, re, resource, sys, time
from pathlib import Path
from statistics import median

import numpy as np
from PIL import Image
import torch

import mnist37
from mnist37.data import mnist_sample_path, load_sample, load_digit_bytes
from mnist37.files import atomic_write
from mnist37.fast import learner_fit, hand_fit, time_fits, bf16_supported, pick_device, autocast_for
from mnist37.recipes import recipe, resolve, fit_recipe, resnet18_rung, fit_resnet18_fast

def clock(f):
    start = time.perf_counter(); res = f(); return time.perf_counter() - start, res

def rss_mb():
    "Peak resident memory of this process so far, in MB (ru_maxrss is in KB on Linux)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def machine():
    model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor()) \
        if Path('/proc/cpuinfo').exists() else platform.processor()
    flags = next((l.split(':', 1)[1].split() for l in open('/proc/cpuinfo') if l.startswith('flags')), []) if Path('/proc/cpuinfo').exists() else []
    import fastai
    return {'cpu': model, 'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
            'fastai': fastai.__version__, 'python': platform.python_version(), 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            **{f: f in flags for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile')}, 'bf16_native': bf16_supported(),
            'load_average_at_start': [round(x, 2) for x in os.getloadavg()]}

def gpu(device):
    "The GPU's name, memory and CUDA version when `device` is one; else nothing."
    if device.type != 'cuda': return {}
    props = torch.cuda.get_device_properties(device)
    return {'gpu': props.name, 'gpu_memory_gb': round(props.total_memory / 2**30), 'cuda': torch.version.cuda}

def precision(device):
    "What resnet18's recipe trains in on `device`: fp32, or the autocast `autocast_for` picks there."
    amp, scaler = autocast_for(device)
    if not isinstance(amp, torch.autocast): return 'fp32'
    return f"{str(amp.fast_dtype).replace('torch.', '')} autocast" + (' with a GradScaler' if scaler else '')

def bench_data(path, repeats):
    folders = [path/s/d for s in ('train', 'valid') for d in '37']
    # the book's way: open each PNG with PIL, make it a tensor, stack each folder's
    book = lambda: [torch.stack([torch.tensor(np.array(Image.open(f))) for f in sorted(p.glob('*.png'))]) for p in folders]
    ours = lambda: [load_digit_bytes(p) for p in folders]
    ours()  # warm the cache
    tb, to = [], []
    for _ in range(repeats):
        t, a = clock(book); tb.append(t)
        t, b = clock(ours); to.append(t)
    identical = all(torch.equal(x, y) for x, y in zip(a, b))
    return {'baseline_s': median(tb), 'mnist37_s': median(to), 'speedup': median(tb)/median(to), 'bit_identical': identical,
            'n_images': sum(len(x) for x in b), 'repeats': repeats, 'baseline_all_s': tb, 'mnist37_all_s': to}

def bench_small(data, kind, repeats, seed=42, device='auto'):
    r, device = recipe(kind), pick_device(device)
    (book_epochs, book_lr), metric = r.book, r.metric.split(':')[1]
    model = lambda: resolve(r.build)(*r.args)   # built after time_fits seeds: the weights fit_recipe starts from
    fast = lambda **changes: round(fit_recipe(r, data, seed, progress=False, device=device, **changes)[1][-1][metric], 4)
    runs = time_fits({'learner': lambda: learner_fit(model(), data, book_epochs, book_lr, device=device),  # the book's code and call
                      'same':    lambda: fast(epochs=book_epochs, lr=book_lr),            # fit_fast doing the book's work, shuffled
                      'mnist37': fast,                                                     # the recipe, as `mnist37 train` runs it
                      'hand':    lambda: hand_fit(model(), data, r.epochs, r.lr, bs=r.bs, device=device)},  # the recipe, least code
                     repeats, seed)
    med, accs = {k: median(t) for k, (t, _) in runs.items()}, {k: acc for k, (_, acc) in runs.items()}
    return {'book_epochs': book_epochs, 'book_lr': book_lr, 'epochs': r.epochs, 'lr': r.lr, 'bs': r.bs,
            'learner_s': med['learner'], 'same_work_s': med['same'], 'mnist37_s': med['mnist37'], 'hand_s': med['hand'],
            'speedup_vs_learner': med['learner']/med['mnist37'], 'same_work_speedup': med['learner']/med['same'],
            'ratio_vs_hand': med['mnist37']/med['hand'], 'acc_learner': accs['learner'], 'acc_same_work': accs['same'],
            'acc_mnist37': accs['mnist37'], 'acc_hand': accs['hand'], 'repeats': repeats,
            **{f'{k}_all_s': t for k, (t, _) in runs.items()}}

SEEDS = (42, 0, 1, 2, 3)   # resnet18's repeats take these in turn: one epoch's accuracy varies with the seed

def bench_resnet18(path, repeats, device='auto'):
    tb, to, rb, ro, seeds = [], [], [], [], [SEEDS[i % len(SEEDS)] for i in range(repeats)]
    for seed in seeds:
        # the book's pipeline from the folder: ImageDataLoaders.from_folder + vision_learner + fit_one_cycle(1, 0.1)
        t, row = clock(lambda: resnet18_rung(path, seed=seed, device=device)); tb.append(t); rb.append(row['accuracy'])
        base_rss = rss_mb()
        # mnist37's, also from the folder: cached bytes, model, training, validation
        t, (_, acc, _) = clock(lambda: fit_resnet18_fast(path, seed=seed, progress=False, device=device)); to.append(t); ro.append(acc)
    return {'baseline_s': median(tb), 'mnist37_s': median(to), 'time_ratio': median(to)/median(tb),
            'acc_baseline': median(rb), 'acc_mnist37': median(ro), 'peak_rss_mb': round(rss_mb(), 1),
            'peak_rss_mb_after_baseline': round(base_rss, 1), 'repeats': repeats, 'seeds': seeds, 'baseline_all_s': tb,
            'mnist37_all_s': to, 'acc_baseline_all': rb, 'acc_mnist37_all': ro}

REPO = Path(__file__).resolve().parent.parent

def course_from_log(log):
    "`make course` prints `NN_name.ipynb   12.3 s` per notebook; sum them."
    if not log: return {'total_s': None, 'per_notebook': None, 'note': 'not measured: pass --course-log LOG, a saved `make course` output'}
    per = {m[1]: float(m[2]) for m in re.finditer(r'^(\S+\.ipynb)\s+([\d.]+) s$', Path(log).read_text(), re.M)}
    log = Path(log).resolve()
    return {'total_s': round(sum(per.values()), 1), 'per_notebook': per, 'log': str(log.relative_to(REPO) if log.is_relative_to(REPO) else log)}

def write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text), mode='w')

def table(res):
    f = lambda v, d=2: '—' if v is None else f'{v:.{d}f}'
    gpu = f"{res['machine']['gpu']} (CUDA {res['machine']['cuda']}) with " if res['machine'].get('gpu') else ''
    out = [f"mnist37 benchmark, {res['date']}: {gpu}{res['machine']['cpu']}, {res['machine']['cores']} cores, torch {res['machine']['torch']}, "
           f"{res['machine']['torch_threads']} threads, device {res['machine'].get('device', 'cpu')}, resnet18 in {res['machine']['precision']}, "
           f"load average at start {res['machine']['load_average_at_start']}. Medians of repeats, seconds.", '',
           "The book's column runs the book's code: for the linear model and the MLP its own `Learner` call on its unshuffled "
           "loaders. mnist37's column runs mnist37's recipe (shuffled slices, its epochs and learning rate), and the hand loop "
           "the same recipe in the least code; \"same work\" is mnist37's loop doing the book's epochs at the book's learning rate.", '',
           '| task | book | mnist37 | hand loop | ratio | accuracy book / mnist37 |', '|---|---|---|---|---|---|']
    if d := res.get('data'):
        out.append(f"| decode 14434 PNGs | {f(d['baseline_s'],3)} | {f(d['mnist37_s'],3)} | | {f(d['speedup'],0)}× faster (bit-identical: {d['bit_identical']}) | |")
    for k in ('linear', 'mlp'):
        if (d := res.get(k)) and 'book_epochs' in d:
            out.append(f"| {k}: the book {d['book_epochs']} epochs at lr {d['book_lr']:g}, mnist37 {d['epochs']} at lr {d['lr']:g} | "
                       f"{f(d['learner_s'])} | {f(d['mnist37_s'])} | {f(d['hand_s'])} | {f(d['speedup_vs_learner'],1)}× faster than "
                       f"Learner ({f(d['same_work_speedup'],1)}× for the same work), {f(d['ratio_vs_hand'])}× the hand loop | "
                       f"{f(d['acc_learner'],4)} / {f(d['acc_mnist37'],4)} |")
    if d := res.get('resnet18'):
        seeds, span = d.get('seeds', [42]), lambda v: f"{min(v):.4f}–{max(v):.4f}" if min(v) < max(v) else f"{v[0]:.4f}"
        out.append(f"| resnet18, 1 epoch, seed{'s'[:len(set(seeds))>1]} {', '.join(map(str, dict.fromkeys(seeds)))} | {f(d['baseline_s'],1)} | "
                   f"{f(d['mnist37_s'],1)} | | time ratio {f(d['time_ratio'])} (peak RSS {f(d['peak_rss_mb'],0)} MB) | "
                   f"{f(d['acc_baseline'],4)} / {f(d['acc_mnist37'],4)}"
                   + (f" (seed by seed: {span(d['acc_baseline_all'])} / {span(d['acc_mnist37_all'])})" if len(set(seeds)) > 1 else '') + " |")
    if (c := res.get('course')) and c.get('total_s') is not None: out.append(f"| `make course` | | {f(c['total_s'],1)} | | | |")
    return '\n'.join(out) + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--resnet-repeats', type=int, default=3)
    p.add_argument('--only', default='data,linear,mlp,resnet18')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch\'s choice)')
    p.add_argument('--device', default='auto', help="where mnist37's fast paths train: auto (a GPU if there is one), cpu, cuda, mps")
    p.add_argument('--course-log', default=None, help="`make course`'s per-notebook times (default: _course/times.txt, if `make course` wrote it)")
    p.add_argument('--out', default=str(Path(__file__).parent))
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.course_log is None and (log := REPO/'_course'/'times.txt').exists(): a.course_log = log
    only = a.only.split(',')
    out, device = Path(a.out), pick_device(a.device)
    name = 'results' if device.type == 'cpu' else f'results-{device.type}'   # each device's run beside the other's
    res = {'date': time.strftime('%Y-%m-%d %H:%M'), 'machine': {**machine(), 'device': str(device), 'precision': precision(device),
                                                                **gpu(device)}}
    saved = out/f'{name}.json'
    def save(): write_atomic(saved, json.dumps(res, indent=1) + '\n'); write_atomic(out/f'{name}.md', table(res))
    if saved.exists():  # keep sections this run does not measure
        old = json.loads(saved.read_text())
        res.update({k: v for k, v in old.items() if k in ('data', 'linear', 'mlp', 'resnet18', 'course') and k not in only})
    path = mnist_sample_path()
    data = load_sample(path)
    steps = {'data': lambda: bench_data(path, a.repeats),
             'linear': lambda: bench_small(data, 'linear', a.repeats, device=a.device),
             'mlp': lambda: bench_small(data, 'mlp', a.repeats, device=a.device),
             'resnet18': lambda: bench_resnet18(path, a.resnet_repeats, device=a.device)}
    for k in only:
        t0 = time.perf_counter(); res[k] = steps[k]()
        print(f'{k}: done in {time.perf_counter()-t0:.0f} s', file=sys.stderr, flush=True)
        res['machine']['load_average_at_end'] = [round(x, 2) for x in os.getloadavg()]
        save()
    res['course'] = course_from_log(a.course_log) if a.course_log or 'course' not in res else res['course']
    save()
    print(table(res))

if __name__ == '__main__': main()
