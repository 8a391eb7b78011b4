#!/usr/bin/env python
"""Run teaching notebooks as a learner does: each copied alone into an empty folder, no repository around it, and
executed cell after cell in a fresh kernel of the Python running this script (Jupyter's nbclient, what "Run all"
does). `python tools/run_alone.py NB.ipynb... [--jobs N] [--skip FLAG,...]`; exits 1 if any notebook fails, naming
its failing cell. `--skip bench` leaves out the cells marked `#| bench`, as `nbdev_test` does without that flag.
Each notebook runs in a process of its own, with a time limit, so that one stuck kernel cannot hold up the rest.
`make learner` runs it in a learner's Python (tools/learner-python.txt) on notebooks 01-17."""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def flagged(cell, flags):
    "Is `cell` a code cell whose nbdev directives (`#| bench`) name one of `flags`?"
    lines = cell.source.splitlines() if cell.cell_type == 'code' else []
    return any(m and m[1] in flags for m in (re.match(r'\s*#\|\s*(\w+)', l) for l in lines[:3]))

def run_alone(nb_path, timeout=1800, skip=(), work=None):
    "Execute the notebook at `nb_path` alone in the empty folder `work` (a new one by default); `(seconds, error or None)`."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config
    nb_path = Path(nb_path).resolve()
    work = Path(work or tempfile.mkdtemp(prefix=f'{nb_path.stem}-alone-'))
    try:
        shutil.copy(nb_path, work/nb_path.name)
        nb = nbformat.read(work/nb_path.name, as_version=4)
        nb.cells = [c for c in nb.cells if not flagged(c, skip)]
        start = time.perf_counter()
        # The kernel talks over Unix sockets in the folder, not TCP: no warning that TCP without keys is plain text.
        cfg = Config({'KernelManager': {'transport': 'ipc', 'ip': str(work/'kernel')}})
        client = NotebookClient(nb, kernel_name='python3', config=cfg, timeout=timeout, resources={'metadata': {'path': str(work)}})
        try: client.execute()   # starts the kernel, runs every cell, shuts the kernel down
        except CellExecutionError as e: return time.perf_counter() - start, re.sub(r'\x1b\[[0-9;]*m', '', str(e))   # no colours
        return time.perf_counter() - start, None
    finally: shutil.rmtree(work, ignore_errors=True)

def run_in_a_process(nb, skip, limit):
    "`run_alone(nb)` in a child process of its own, killed with its kernel after `limit` seconds; `(seconds, error)`."
    work = tempfile.mkdtemp(prefix=f'{Path(nb).stem}-alone-')   # made and removed here: a killed child leaves nothing
    cmd = [sys.executable, __file__, '--one', '--skip', ','.join(skip), '--work', work, str(nb)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try: out, err = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL); child.communicate()
        return time.perf_counter() - start, f"no result after {limit} s: stopped, with its kernel"
    finally: shutil.rmtree(work, ignore_errors=True)
    try: res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError): return time.perf_counter() - start, f"the runner exited with {child.returncode}:\n{err[-3000:]}"
    return res['seconds'], res['error']

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('notebooks', nargs='+', type=Path)
    p.add_argument('--jobs', type=int, default=1, help='notebooks run at once (each in its own process and kernel)')
    p.add_argument('--skip', default='', help='leave out the cells marked with these nbdev flags, e.g. bench')
    p.add_argument('--limit', type=int, default=3600, help='seconds a notebook may take before it is stopped')
    p.add_argument('--one', action='store_true', help=argparse.SUPPRESS)   # the child: run one notebook, print JSON
    p.add_argument('--work', default=None, help=argparse.SUPPRESS)         # the child's empty folder
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(',')))
    if args.one:
        secs, err = run_alone(args.notebooks[0], skip=skip, work=args.work)
        print(json.dumps({'seconds': secs, 'error': err})); return 0
    failed = []
    def one(nb):
        secs, err = run_in_a_process(nb, skip, args.limit)
        name = f'{nb.parent.name}/{nb.name}' if nb.parent.name == 'ko' else nb.name   # the Korean edition's, by its folder
        print(f"{name:<31} {secs:6.1f} s  {'FAILED' if err else 'ok'}", flush=True)
        if err: failed.append((name, err))
    with ThreadPoolExecutor(args.jobs) as pool: list(pool.map(one, args.notebooks))
    for name, err in failed: print(f"\n{name} failed, alone in an empty folder:\n{err[-3000:]}", file=sys.stderr)
    print(f"{len(args.notebooks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
