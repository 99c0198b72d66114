"""The course website in `_docs/` (built by `bash .ci/site`), opened page by page in a real browser, offline.

A local http.server on 127.0.0.1 serves `_docs/`; headless Debian Chromium (/usr/bin/chromium, driven by Python
playwright, never a downloaded browser) opens EVERY page with all requests outside 127.0.0.1 refused, and checks:
no executed cell shows an error/traceback, no stderr box reports an error, no JS console error, no failed request;
every plotly figure the chapter produced is drawn by plotly.js (`.js-plotly-plot` with data and an SVG) and every
image has loaded; math is typeset by the MathJax served from `_static/`; the Colab badge links to the chapter's
notebook; the sidebar lists every chapter in chapter order; chapters built at test size say so; the search page
finds a word. Screenshots of the front page and of a chapter with a plotly figure go to `_docs/_screenshots/`.

Without `_docs/` the tests are skipped (saying how to build it), unless `D2O_SITE_REQUIRED=1` (CI), where they fail.
Expectations come from nbs/ and from nbdev (page names), plus the build's manifest for what the executed notebooks
produced (how many figures, which chapters ran at test size).
"""
import functools, json, os, re, socket, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
DOCS = Path(os.environ.get('D2O_SITE_DIR', ROOT / '_docs'))
SHOTS = DOCS / '_screenshots'
REQUIRED = os.environ.get('D2O_SITE_REQUIRED', '') == '1'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
HOW = 'build it with `bash .ci/site` (full size, ~10 min on 2 cores; `bash .ci/site --small` for a quick look)'


def _chapters():
    "Notebooks in the order the site must list them: index, syllabus, then by file name; pages named as nbdev does."
    from nbdev.doclinks import _nbpath2html
    nbs = sorted(p for p in NBS.rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(NBS).parts))
    nbs.sort(key=lambda p: ({'index.ipynb': 0, 'syllabus.ipynb': 1}.get(p.name, 2), str(p.relative_to(NBS))))
    return [(p, _nbpath2html(Path(p.name)).name) for p in nbs]


CHAPTERS = _chapters()


def _fail_or_skip(msg):
    if REQUIRED: pytest.fail(f'D2O_SITE_REQUIRED=1: {msg}')
    print(f'SKIP: {msg}'); pytest.skip(msg)


@pytest.fixture(scope='module')
def manifest():
    if not (DOCS / 'index.html').exists(): _fail_or_skip(f'no site in {DOCS}: {HOW}')
    m = json.loads((DOCS / 'site_manifest.json').read_text())
    return {r['page']: r for r in m['pages']}


@pytest.fixture(scope='module')
def site(manifest):
    "(base url, browser): http.server on a free 127.0.0.1 port serving _docs/, and headless Chromium."
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        _fail_or_skip(f'no Chromium at {CHROMIUM} (bash .ci/browser.sh installs it)')
    try: from playwright.sync_api import sync_playwright
    except ImportError: _fail_or_skip('the python package playwright is not installed (pip install -e ".[dev]")')

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address): pass    # the browser closing a connection mid-file
    server = Server(('127.0.0.1', port), functools.partial(Quiet, directory=str(DOCS)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        try: yield f'http://127.0.0.1:{port}/', browser
        finally:
            browser.close(); server.shutdown()


class Visit:
    "One page open in the browser, with its console errors, page errors and refused/failed requests."
    def __init__(self, site, path, wait_math=True):
        base, browser = site
        self.ctx = browser.new_context(viewport={'width': 1400, 'height': 1000})
        self.page = page = self.ctx.new_page()
        page.set_default_timeout(30_000)
        self.problems = []
        page.on('console', lambda m: m.type == 'error' and self.problems.append(f'console error: {m.text}'))
        page.on('pageerror', lambda e: self.problems.append(f'page error: {e}'))
        page.on('requestfailed', lambda r: self.problems.append(f'request failed: {r.url} {r.failure}'))

        def route(r):
            if r.request.url.startswith(base): r.continue_()
            else:
                self.problems.append(f'tried to load from the network: {r.request.url}'); r.abort()
        page.route('**/*', route)
        page.goto(base + path, wait_until='load', timeout=60_000)
        if wait_math and page.evaluate('() => !!(window.MathJax && window.MathJax.Hub)'):   # MathJax has typeset
            page.wait_for_function('() => MathJax.isReady && MathJax.Hub.queue.pending === 0', timeout=60_000)
            page.evaluate('() => new Promise(r => MathJax.Hub.Queue(() => r(true)))')

    def close(self): self.ctx.close()


def test_every_page_is_a_chapter_and_every_chapter_a_page(manifest):
    pages = sorted(p.name for p in DOCS.glob('*.html') if p.name not in ('genindex.html', 'search.html'))
    assert pages == sorted(h for _, h in CHAPTERS), 'the site and nbs/ disagree: rebuild with `bash .ci/site`'
    assert set(manifest) == {h for _, h in CHAPTERS}


@pytest.mark.browser
@pytest.mark.parametrize('nb,html', CHAPTERS, ids=[h[:-5] for _, h in CHAPTERS])
def test_chapter_page(site, manifest, nb, html):
    rec = manifest[html]
    v = Visit(site, html)
    page = v.page
    try:
        if html == 'index.html':                              # taken first, so that it exists when a check fails
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / 'front_page.png'), full_page=False)
            print(f'screenshot of the front page: {SHOTS / "front_page.png"}')
        main = page.locator('main')
        # executed cells: no error output, no traceback, no stderr that reports an error
        errors = page.locator('.cell_output .output.error, .cell_output .output.traceback').all_inner_texts()
        assert not errors, f'{nb.name}: cells raised:\n' + '\n---\n'.join(e[-1500:] for e in errors)
        assert rec.get('errors', 0) == 0 and not rec.get('build_error'), rec
        outputs = '\n'.join(page.locator('.cell_output').all_inner_texts())
        assert 'Traceback (most recent call last)' not in outputs, f'{nb.name}: a traceback is printed in an output'
        stderr = page.locator('.cell_output .output.stderr').all_inner_texts()
        bad = [s for s in stderr if re.search(r'Traceback|Error\b|Exception\b', s)]
        assert not bad, f'{nb.name}: stderr reports errors:\n' + '\n---\n'.join(s[-1500:] for s in bad)
        for s in stderr: print(f'{nb.name}: stderr box (not an error): {s[:300]!r}')

        # no MyST/Quarto markup left as text (directives, attributes of show_doc's links)
        text = main.inner_text()
        for raw in (':::{', '{target=', '{admonition}'):     # (prose may mention `#| slow`: not checked)
            assert raw not in text, f'{nb.name}: unrendered markup {raw!r} in the page'

        # plotly figures: as many drawn by plotly.js as the executed notebook produced
        n_src = _figure_cells(nb)
        n_fig = rec.get('plotly', 0)
        assert n_fig >= (1 if n_src else 0), f'{nb.name}: {n_src} cells make plotly figures, the executed notebook has {n_fig}'
        drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
            g => g.data && g.data.length > 0 && g.querySelector('svg.main-svg')).length""")
        assert drawn == n_fig, f'{nb.name}: {drawn} plotly figures drawn, {n_fig} expected'
        # images (the Colab badge among them) all loaded
        broken = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).filter(
            i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)""")
        assert not broken, f'{nb.name}: images not loaded: {broken}'
        if rec.get('images'):
            assert page.locator('.cell_output img, main img:not([alt="Open In Colab"])').count() >= 1

        # math: typeset by MathJax (served from _static), nothing left as raw TeX
        has_math = page.locator('main .math.notranslate').count() > 0   # Sphinx's math nodes
        assert has_math or not _has_math(nb), f'{nb.name}: the notebook has math, the page has no math element'
        if has_math:
            typeset = page.locator('main .MathJax, main .MathJax_Display, main .MathJax_CHTML, main mjx-container').count()
            assert typeset > 0, f'{nb.name}: math elements but no MathJax output'
            raw = page.evaluate("""() => Array.from(document.querySelectorAll('main .math.notranslate')).filter(
                m => !m.querySelector('.MathJax, .MathJax_Display, .MathJax_CHTML, mjx-container, script[type^="math/tex"]')
                ).map(m => m.textContent.slice(0, 80))""")
            assert not raw, f'{nb.name}: math left untypeset: {raw[:5]}'

        # the Colab badge opens this notebook in Colab
        colab = f'https://colab.research.google.com/github/d2o-edu/d2o_edu/blob/main/nbs/{nb.relative_to(NBS).as_posix()}'
        badge = main.locator(f'a[href="{colab}"] img')
        assert badge.count() >= 1, f'{nb.name}: no Colab badge linking to {colab}'

        # the sidebar lists every chapter, in chapter order
        links = page.evaluate("""() => Array.from(document.querySelectorAll('.bd-sidebar-primary nav a.reference'))
            .map(a => new URL(a.href).pathname.split('/').pop() || 'index.html')""")
        assert links == [h for _, h in CHAPTERS], f'{nb.name}: sidebar {links}'

        # a chapter run at test size says so
        if rec.get('small'): assert main.locator('.admonition', has_text='test size').count() == 1
        assert not v.problems, f'{nb.name}: ' + '\n'.join(v.problems)
    finally: v.close()


@pytest.mark.browser
def test_chapter_screenshot_with_a_figure(site, manifest):
    html = next((h for _, h in CHAPTERS if manifest[h].get('plotly')), None)
    assert html, 'no chapter has a plotly figure'
    v = Visit(site, html)
    try:
        fig = v.page.locator('.js-plotly-plot').first
        fig.scroll_into_view_if_needed()
        v.page.evaluate('() => window.scrollBy(0, -250)')
        v.page.wait_for_timeout(500)
        SHOTS.mkdir(exist_ok=True)
        path = SHOTS / f'{html[:-5]}_figure.png'
        v.page.screenshot(path=str(path))
        print(f'screenshot of {html} at its first plotly figure: {path}')
        assert not v.problems, v.problems
    finally: v.close()


@pytest.mark.browser
@pytest.mark.parametrize('word', ['anchors', 'Jensen'])
def test_search_finds_a_word(site, manifest, word):
    v = Visit(site, f'search.html?q={word}', wait_math=False)
    try:
        hits = v.page.locator('#search-results ul.search li')
        hits.first.wait_for(state='attached', timeout=30_000)
        assert hits.count() >= 1
        titles = hits.locator('a').all_inner_texts()
        print(f'search {word!r}: {hits.count()} results: {titles[:6]}')
        assert not v.problems, v.problems
    finally: v.close()


@pytest.mark.browser
def test_other_pages_load_cleanly(site, manifest):
    others = [p.name for p in DOCS.glob('*.html') if p.name not in {h for _, h in CHAPTERS}]
    for name in others:
        v = Visit(site, name + ('?q=d2o' if name == 'search.html' else ''), wait_math=False)
        try: assert not v.problems, f'{name}: ' + '\n'.join(v.problems)
        finally: v.close()


# ---------------------------------------------------------------------------------------- what nbs/ leads us to expect
def _cells(nb):
    return json.loads(nb.read_text(encoding='utf-8'))['cells']


def _directives(src):
    return [l for l in src.splitlines() if l.startswith('#|')]


def _figure_cells(nb):
    "Code cells that are shown (no `#| hide`/`export`, not `eval: false`) and make a plotly figure visible."
    n = 0
    for c in _cells(nb):
        src = ''.join(c['source'])
        d = ' '.join(_directives(src))
        if c['cell_type'] != 'code' or re.search(r'hide|export|eval:\s*false', d): continue
        if ('go.' in src or 'make_subplots' in src) and re.search(r'\.show\(\)|^\w*fig\w*\s*$', src, re.M): n += 1
    return n


def _has_math(nb):
    return any(c['cell_type'] == 'markdown' and re.search(r'\$[^$\s][^$]*\$', ''.join(c['source'])) for c in _cells(nb))
