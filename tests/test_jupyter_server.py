"""A real Jupyter server runs the first notebook on the project's kernel, the way a learner's JupyterLab does.

The server is a subprocess on a free loopback port with a token; the notebook's code cells go to a kernel
named `mnist37` over the kernel's websocket channel, and their outputs are checked."""
import base64, json, os, re, secrets, socket, subprocess, sys, time, uuid
from pathlib import Path

import nbformat, pytest, requests, websocket

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT/'nbs'/'01_data.ipynb'
KERNEL = 'mnist37'          # registered by the Makefile's venv step
START_TIMEOUT = 90          # seconds for the server, then the kernel, to come up
CELL_TIMEOUT = 180          # seconds for one cell (the whole notebook takes about 20 s)

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def wait_for(ready, what, timeout, proc, log):
    "Poll `ready()` until it is true; fail (with the server's log) if `proc` exits or `timeout` seconds pass."
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None: pytest.fail(f"jupyter server exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline: pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()}")
        time.sleep(0.25)

@pytest.fixture
def server(tmp_path):
    "A `jupyter server` on 127.0.0.1 with a token: yields (base url, token, an authenticated requests session)."
    port, token, log = free_port(), secrets.token_hex(16), tmp_path/'server.log'
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path/'runtime')}  # MNIST37_DATA and the rest pass through
    env.pop('MPLBACKEND', None)  # figures come back inline, as in JupyterLab
    cmd = [Path(sys.executable).with_name('jupyter'), 'server', '--no-browser', '--ServerApp.ip=127.0.0.1',
           f'--ServerApp.port={port}', '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={ROOT/"nbs"}']
    if os.geteuid() == 0: cmd.append('--allow-root')  # containers and CI run as root
    url, http = f'http://127.0.0.1:{port}', requests.Session()
    http.headers['Authorization'] = f'token {token}'
    def up():
        try: return http.get(f'{url}/api/status', timeout=5).ok
        except requests.RequestException: return False
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_for(up, 'answer on /api/status', START_TIMEOUT, proc, log)
        yield url, token, http
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(timeout=10)

@pytest.fixture
def kernel(server):
    "A `mnist37` kernel started through the REST API: yields the websocket url of its channels; deleted afterwards."
    url, token, http = server
    specs = http.get(f'{url}/api/kernelspecs', timeout=10).json()['kernelspecs']
    assert KERNEL in specs, f"no '{KERNEL}' kernel in {sorted(specs)}: `make venv` registers it"
    r = http.post(f'{url}/api/kernels', json={'name': KERNEL}, timeout=START_TIMEOUT)
    assert r.status_code == 201, r.text
    kid = r.json()['id']
    try: yield f"ws{url[4:]}/api/kernels/{kid}/channels?session_id={uuid.uuid4().hex}", token
    finally:
        r = http.delete(f'{url}/api/kernels/{kid}', timeout=30)
        assert r.status_code == 204, f"kernel {kid} was not deleted: {r.status_code} {r.text}"

def execute(ws, code, session, timeout=CELL_TIMEOUT):
    "Run `code` on the kernel behind `ws`: (the execute_reply's content, the outputs as a notebook would store them)."
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps(dict(channel='shell', parent_header={}, metadata={}, buffers=[],
        header=dict(msg_id=msg_id, msg_type='execute_request', session=session, username='test', version='5.3'),
        content=dict(code=code, silent=False, store_history=True, user_expressions={}, allow_stdin=False))))
    reply, idle, outputs = None, False, []
    deadline = time.monotonic() + timeout
    while reply is None or not idle:  # the reply (shell) and the final idle status (iopub) may come in either order
        left = deadline - time.monotonic()
        if left <= 0: raise TimeoutError(f"no reply within {timeout} s to:\n{code}")
        ws.settimeout(left)
        msg = json.loads(ws.recv())
        if msg['parent_header'].get('msg_id') != msg_id: continue
        kind, content = msg['header']['msg_type'], msg['content']
        if kind == 'execute_reply': reply = content
        elif kind == 'status': idle = content['execution_state'] == 'idle'
        elif kind in ('stream', 'execute_result', 'display_data', 'error'): outputs.append(dict(output_type=kind, **content))
    return reply, outputs

def text(outputs):
    "Everything the outputs show as text."
    return ''.join(o.get('text') or o.get('data', {}).get('text/plain', '') for o in outputs)

def test_notebook_runs_on_the_project_kernel(kernel):
    ws_url, token = kernel
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == 'code']
    session = uuid.uuid4().hex
    ws = websocket.create_connection(ws_url, header=[f'Authorization: token {token}'], timeout=START_TIMEOUT)
    try:
        reply, env = execute(ws, "import os, sys; os.environ.get('MNIST37_DATA'), sys.prefix", session)
        assert reply['status'] == 'ok'
        assert text(env) == repr((os.environ.get('MNIST37_DATA'), sys.prefix)), "the kernel is not the project's venv, or lost MNIST37_DATA"
        outputs = {}
        for src in cells:
            reply, outs = execute(ws, src, session)
            assert reply['status'] == 'ok', f"{reply.get('ename')}: {reply.get('evalue')} in cell:\n{src}"
            assert not [o for o in outs if o['output_type'] == 'error'], src
            outputs[src] = outs
    finally: ws.close()

    def out(last_line):
        "The outputs of the cell whose code ends with the line `last_line`."
        [src] = [s for s in cells if s.splitlines()[-1] == last_line]
        return outputs[src]

    assert text(out('book_threes.shape, book_threes.ndim')) == '(torch.Size([6131, 28, 28]), 3)'
    assert text(out('stacked_threes.shape, stacked_threes.ndim')) == '(torch.Size([6131, 28, 28]), 3)'
    pixels = [[0,0,0,0,0,0], [0,0,0,0,0,29], [0,0,0,48,166,224], [0,93,244,249,253,187], [0,107,253,253,230,48], [0,3,20,20,15,0]]
    for snippet in ('np.array(im3)[4:10,4:10]', 'tensor(im3)[4:10,4:10]'):
        shown = text(out(snippet))
        assert [int(n) for n in re.findall(r'\b\d+\b', shown.split('dtype')[0])] == sum(pixels, []), shown
    assert text(out('threes[:3].map(lambda p: p.name)')) == "['10.png', '10000.png', '10011.png']"
    assert '<table' in out("df.style.set_properties(**{'font-size':'6pt'}).background_gradient('Greys')")[0]['data']['text/html']
    printed = [o['text'] for outs in outputs.values() for o in outs if o['output_type'] == 'stream']
    assert any(re.fullmatch(r'book: [\d.]+s +cached: [\d.]+s +\(\d+x faster\)\n', t) for t in printed), printed
    for snippet in ('im3', 'show_image(stacked_threes[1]);'):
        [png] = [o['data']['image/png'] for o in out(snippet) if 'image/png' in o.get('data', {})]
        png = base64.b64decode(png)
        assert png.startswith(b'\x89PNG\r\n\x1a\n') and len(png) > 100, snippet
