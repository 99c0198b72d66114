"""A real browser drives the logit-landscape widget in JupyterLab: run the cell, move the β slider, see the plot change
(and equal the library's surface at the new β), switch the loss to GA; three screenshots are saved under tmp_path.

JupyterLab runs on 127.0.0.1 (free port, random token, temporary root/config/runtime/data dirs, so ~/.jupyter is never
touched); headless Debian Chromium is driven by Python `playwright` (never its own downloaded browser). Skipped, with
the reason, when the browser or playwright is missing; `.ci/browser.sh` installs the browser on CI.
"""
import json, math, os, secrets, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from d2o_edu.landscape import X_RANGE, Y_RANGE

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
NOTEBOOK_CELL = "from d2o_edu.widgets import logit_landscape_widget\nw = logit_landscape_widget(n=31)\nw"

# in the page, the plotly graph div of the FigureWidget: the type and coordinates of its loss surface (trace 0) ...
PLOT_AXES_JS = """() => {
  const t = document.querySelector('.js-plotly-plot').data[0];
  const arr = v => (v && v.length !== undefined) ? Array.from(v) : null;
  return {type: t.type, x: arr(t.x), y: arr(t.y)};
}"""
# ... and the surface values it currently shows, as JSON (null until the widget has rendered)
PLOT_Z_JS = """() => {
  const g = document.querySelector('.js-plotly-plot');
  if (!g || !g.data || !g.data.length || !g.data[0].z) return null;
  return JSON.stringify(g.data[0].z);
}"""


def _skip_reason():
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        return f'no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=/path)'
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return 'the python package playwright is not installed (pip install playwright)'
    try: import jupyterlab  # noqa: F401
    except ImportError: return 'jupyterlab is not installed'
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _wait_until(check, timeout, what, interval=0.25):
    "Poll `check()` until it returns something truthy; fail after `timeout` seconds naming `what`."
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value: return value
        time.sleep(interval)
    raise TimeoutError(f'timed out after {timeout} s waiting for {what}')


def _write_notebook(path):
    nb = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': 'widget', 'metadata': {}, 'outputs': [],
                     'source': NOTEBOOK_CELL}],
          'metadata': {'kernelspec': {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'},
                       'language_info': {'name': 'python'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path.write_text(json.dumps(nb))


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on a free local port with a token, all its state under tmp_path; killed afterwards."
    reason = _skip_reason()
    if reason:
        print(f'SKIP: {reason}')
        pytest.skip(reason)
    root = tmp_path / 'root'; root.mkdir()
    _write_notebook(root / 'widget.ipynb')
    state = {k: tmp_path / d for k, d in [('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_RUNTIME_DIR', 'runtime'),
                                           ('JUPYTER_DATA_DIR', 'data'), ('IPYTHONDIR', 'ipython'),
                                           ('JUPYTERLAB_SETTINGS_DIR', 'lab-settings'),
                                           ('JUPYTERLAB_WORKSPACES_DIR', 'lab-workspaces')]}
    for d in state.values(): d.mkdir()
    env = {**os.environ, **{k: str(v) for k, v in state.items()},
           'PATH': str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', ''),
           'HF_HUB_OFFLINE': '1', 'IN_TEST': '1', 'PYTHONUNBUFFERED': '1'}
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / 'jupyterlab.log', 'w')
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
           '--allow-root', '--LabApp.news_url=None', '--LabApp.extension_manager=readonly',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate']
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f'http://127.0.0.1:{port}'

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f'JupyterLab exited with {proc.returncode}:\n' + (tmp_path / 'jupyterlab.log').read_text()[-3000:])
        try:
            with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=2) as r: return r.status == 200
        except OSError: return False
    try:
        _wait_until(up, 60, 'JupyterLab to answer /api/status')
        yield dict(url=f'{base}/lab/tree/widget.ipynb?token={token}', log=tmp_path / 'jupyterlab.log')
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)          # the server and the kernels it started (its own session)
            try: proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL); proc.wait(timeout=10)
        log.close()


def _changed(page, old):
    "The plot's current surface if it differs from `old`, else None (for _wait_until)."
    z = page.evaluate(PLOT_Z_JS)
    return z if z and z != old else None


def _settled(page, timeout, what, quiet=1.0):
    "The plot's surface once it has stopped changing for `quiet` seconds (each key press may trigger a redraw)."
    last, since, end = None, time.time(), time.time() + timeout
    while time.time() < end:
        z = page.evaluate(PLOT_Z_JS)
        if z != last: last, since = z, time.time()
        elif time.time() - since >= quiet: return z
        time.sleep(0.2)
    raise TimeoutError(f'timed out after {timeout} s waiting for {what} to settle')


def _is_ga_plane(z, y):
    "Gradient ascent's surface is the negative's log-ratio itself: row j is constant and equals y[j]."
    return z is not None and all(abs(v - yj) < 1e-6 for row, yj in zip(json.loads(z), y) for v in row)


@pytest.mark.slow                 # a JupyterLab server, a kernel and a browser: `pytest --slow`
@pytest.mark.browser
def test_logit_widget_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright
    t0 = time.time()
    shots = {k: tmp_path / f'jupyterlab_logit_widget_{k}.png' for k in ('start', 'beta', 'ga')}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.set_default_timeout(30_000)
            page.goto(jupyterlab['url'], wait_until='domcontentloaded', timeout=45_000)
            editor = page.locator('.jp-Notebook .jp-Cell .cm-content').first
            editor.wait_for(state='visible', timeout=45_000)
            # run only once the kernel is up and idle (a cell run before that is dropped)
            page.locator('.jp-StatusBar-TextItem', has_text='Idle').first.wait_for(state='visible', timeout=45_000)
            try: page.locator('.jp-toast-button', has_text='No').first.click(timeout=3_000)   # the "Jupyter news?" toast
            except Exception: pass                                                             # not shown
            editor.click()
            page.keyboard.press('Shift+Enter')
            z_start = _wait_until(lambda: page.evaluate(PLOT_Z_JS), 60, 'the plotly FigureWidget to render its data')
            axes = page.evaluate(PLOT_AXES_JS)
            page.wait_for_timeout(500)                      # let plotly finish drawing before each picture
            page.screenshot(path=str(shots['start']), full_page=True)

            # move β with the keyboard, as a person would: focus the slider handle, press → six times
            slider = page.locator('.widget-slider', has=page.locator('.widget-label', has_text='β')).first
            handle = slider.locator('.noUi-handle').first
            handle.wait_for(state='visible', timeout=10_000)
            readout_before = slider.locator('.widget-readout').inner_text()
            handle.focus()
            for _ in range(6): page.keyboard.press('ArrowRight')
            _wait_until(lambda: _changed(page, z_start), 30, 'the plot data to change after moving the β slider')
            z_beta = _settled(page, 30, 'the plot after moving β')
            readout_after = slider.locator('.widget-readout').inner_text()
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots['beta']), full_page=True)

            # switch the loss to gradient ascent in the dropdown
            page.locator('.widget-dropdown select').first.select_option(label='GA')
            z_ga = _wait_until(lambda: (lambda z: z if _is_ga_plane(z, axes['y']) else None)(page.evaluate(PLOT_Z_JS)), 30,
                               "the plot to show gradient ascent's surface after choosing GA")
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots['ga']), full_page=True)
        except Exception:
            try:                                            # leave evidence: what the page showed when it failed
                page.screenshot(path=str(tmp_path / 'failure.png'), full_page=True)
                print('page at failure:', tmp_path / 'failure.png', '\n',
                      page.locator('.jp-OutputArea').first.inner_text(timeout=2000)[:2000])
            except Exception as e: print('could not capture the failing page:', e)
            raise
        finally:
            browser.close()
    print(f'β readout {readout_before} -> {readout_after}; {time.time() - t0:.1f} s in the browser; screenshots:',
          *map(str, shots.values()))
    assert readout_before != readout_after
    assert axes['type'] == 'contour' and axes['x'] is not None and axes['y'] is not None, axes
    assert (min(axes['x']), max(axes['x'])) == X_RANGE and (min(axes['y']), max(axes['y'])) == Y_RANGE, axes
    z0, z1, z2 = json.loads(z_start), json.loads(z_beta), json.loads(z_ga)
    assert len(z0) == len(z1) == len(z2) == 31 and z0 != z1 and z1 != z2
    # what the browser shows after the β move is the library's D²O surface at the slider's new β (a log slider: the
    # exponent moves in steps of 0.05) with every other control at its default
    import numpy as np
    from d2o_edu.landscape import logit_loss_grid
    beta = 10 ** (round(math.log10(float(readout_after)) / 0.05) * 0.05)
    expected = logit_loss_grid('d2o', alpha=0.1, beta=beta, K=11, noise=0.34, spread=10.0, x=axes['x'], y=axes['y'])['z']
    assert float(readout_after) > float(readout_before) and np.allclose(z1, expected, atol=1e-9), (beta, readout_after)
    assert all(s.stat().st_size > 10_000 for s in shots.values())
