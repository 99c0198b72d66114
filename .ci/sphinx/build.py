"""Build the course website into `_docs/`, offline: `bash .ci/site` runs this (see `--help`).

Pipeline, per notebook of `nbs/` (index first, the syllabus next, then the chapters in file-name order):

1. nbdev's `add_show_docs` processor inserts a `show_doc(...)` cell after every exported function (as `nbdev_docs`
   does), and a hidden `from nbdev.showdoc import show_doc` cell is put first;
2. the notebook is executed by nbclient in a temporary copy of the repository (nothing is written into it), at full
   size (`IN_TEST` unset) unless the chapter is listed in `SMALL`; cells marked `#| eval: false` are not executed
   (as `nbdev_test` and Quarto do); `#| slow` / `#| notest` cells ARE executed: nbdev's docs show them.
   Chapters run two at a time (`--jobs`), and each one's wall time goes into the build log;
3. the executed notebook goes through nbdev's own docs processors (`FilterDefaults.base_procs()` minus the two that
   execute: frontmatter, `#| hide` cells dropped, export markers and directives stripped, links, ...);
4. what Quarto would do next is done here for myst-nb: the title becomes a heading with the Colab badge, Quarto cell
   options become myst-nb tags, plotly outputs become a div drawn by the plotly.js served from `_static/`, CDN loader
   snippets and widget views (which need a CDN widget manager) are replaced;
5. Sphinx (myst-nb, sphinx-book-theme) renders the pages; MathJax 2.7 (PyPI jupyter-server-mathjax) and
   plotly.min.js (from the plotly package) are copied into `_static/`, so the site needs no network.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Chapters the site runs at test size (IN_TEST=1), and why: the page then says so in an admonition. None today: at
# full size on 2 cores (one torch thread per kernel) the longest are 12b_pipeline (~6 min: the whole-run cells moved
# there from 13_cli) and 10_landscapes (~2 min).
SMALL = {}
# Seconds after which one cell is stopped (the chapter then shows the timeout error, and the site test fails).
CELL_TIMEOUT = 1800
# Longest chapters first, so that two workers finish together (measured at full size on 2 cores; unknown ones last).
LONG_FIRST = ['12b_pipeline', '10_landscapes', '13_cli', '06_sft', '08_training', '10b_widgets', '09_evaluation', '09a_judges', '07_sampling',
              '03_losses', '11_capstone', '04_data', '02_toy', '01_preferences', '05_models']


def page_name(nb_path):
    "The page nbdev/Quarto would publish a notebook as (`00_core.ipynb` -> `core`): links and URLs stay the same."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb_path.name.lower())[:-len('.ipynb')]


def chapter_order(nbs):
    "Every notebook under nbs/ (not `_`/`.` ones): index first, then syllabus, then by file name."
    files = sorted(p for p in nbs.rglob('*.ipynb')
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))
    first = {'index.ipynb': 0, 'syllabus.ipynb': 1}
    return sorted(files, key=lambda p: (first.get(p.name, 2), str(p.relative_to(nbs))))


def settings():
    import configparser
    c = configparser.ConfigParser(); c.read(ROOT / 'settings.ini')
    return c['DEFAULT']


# ---------------------------------------------------------------------------------------------------- execution
def _skip(cell):
    "Cells nbdev's test runner and Quarto do not execute: `#| eval: false`."
    if cell.cell_type != 'code': return True
    for line in cell.source.splitlines():
        if not line.startswith('#|'): break
        if re.match(r'#\|\s*eval:\s*false\s*$', line, re.I): return True
    return False


def execute(nb_file, cwd, timeout, limit=None):
    """Execute `nb_file` in place (cwd `cwd`) with nbclient; errors are kept as outputs (the site test catches them).
    `limit`: seconds for the whole notebook (a cell still running then is stopped with CellTimeoutError)."""
    import nbformat
    from nbclient import NotebookClient

    class Client(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if _skip(cell): return cell
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    nb = nbformat.read(nb_file, as_version=4)
    for i, c in enumerate(nb.cells): c.setdefault('id', f'site-{i}')      # cells nbdev's processor added have none
    deadline = time.time() + (limit or 1e9)
    client = Client(nb, timeout_func=lambda cell: max(1, min(timeout, int(deadline - time.time()))),
                    kernel_name='python3', allow_errors=True, record_timing=False,
                    resources={'metadata': {'path': str(cwd)}})
    client.execute()
    nbformat.write(nb, nb_file)
    return nb


def _mk_cell(src, kind='code'):
    from execnb.nbio import mk_cell
    return mk_cell(src, kind)


def stage_a(src, dst):
    "nbdev's `add_show_docs`: a `show_doc` cell after every exported function; `show_doc` imported by a hidden cell."
    from execnb.nbio import read_nb, write_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import populate_language, add_show_docs
    nb = read_nb(src)
    NBProcessor(nb=nb, procs=[populate_language, add_show_docs], rm_directives=False).process()
    for c in nb.cells:                                      # bookkeeping that must not reach the json
        for k in ('directives_', 'idx_', 'has_sd'): c.pop(k, None)
        c.get('metadata', {}).pop('language', None)
    if getattr(nb, 'has_docs_', None):
        nb.cells.insert(0, _mk_cell('#| hide\nfrom nbdev.showdoc import show_doc'))
    for k in ('has_docs_',): nb.pop(k, None)
    write_nb(nb, dst)


def stage_b(executed, src_path):
    "nbdev's docs processors on the executed notebook (those that execute code are left out: it has run already)."
    from execnb.nbio import dict2nb
    from nbdev.process import NBProcessor
    from nbdev import processors as P
    from nbdev.frontmatter import FrontmatterProc

    def mark_sd(cell):                                      # add_show_docs' flag, which the json round trip loses
        if cell.cell_type == 'code' and cell.source.startswith('show_doc('): cell.has_sd = True

    skip = {'exec_show_docs', 'add_show_docs', 'insert_warning'}
    procs = [p for p in P.FilterDefaults().procs() if getattr(p, '__name__', '') not in skip]
    procs.insert(procs.index(P.mv_exports), mark_sd)
    nb = dict2nb(json.loads(json.dumps(executed)))
    nb.path_ = str(src_path)
    NBProcessor(nb=nb, procs=procs).process()
    return nb


# ------------------------------------------------------------------------------------------- myst-nb conversion
_CDN = re.compile(r'cdn\.plot\.ly|require\.config|requirejs|cdn\.jsdelivr|unpkg\.com', re.I)
_PROGRESS = re.compile(r'\d+%\||\bit/s\b|\?it/s|examples/s|ba/s|\[\d\d:\d\d')
_QUARTO = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
COLAB_IMG = 'https://colab.research.google.com/assets/colab-badge.svg'


def _plotly_html(fig, first):
    import plotly.io as pio
    html = pio.to_html(fig, include_plotlyjs=False, full_html=False, config={'responsive': True})
    # plotly.js once per page, served from _static (all pages live at the top level of the site)
    return ('<script src="_static/plotly.min.js"></script>\n' if first else '') + html


def _text(v): return ''.join(v) if isinstance(v, list) else (v or '')


def to_myst(nb, title, desc, colab_url, small_reason, site_url):
    "Turn nbdev's processed notebook into what myst-nb renders: returns (notebook dict, stats)."
    stats = dict(plotly=0, images=0, widgets=0, errors=0, stderr=0, math=False)
    cells, first_plot = [], True
    head = f'# {title}\n\n'
    if desc: head += f'> {desc}\n\n'
    head += (f'<p class="d2o-colab"><a href="{colab_url}"><img src="_static/colab-badge.svg" alt="Open In Colab">'
             f'</a></p>\n')
    cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': head})
    if small_reason:
        cells.append({'cell_type': 'markdown', 'metadata': {}, 'source':
                      f':::{{admonition}} Run at test size\n:class: warning\n\nThis page was executed with `IN_TEST=1` '
                      f'(the sizes of `pick(full, small)`), not at full size: {small_reason} Run the notebook to see '
                      f'it at full size.\n:::\n'})
    for c in nb.cells:
        c = dict(c)
        kind = c['cell_type']
        src = _text(c.get('source'))
        if kind == 'raw':
            if src.lstrip().startswith('---'): continue          # Quarto's YAML frontmatter: the title is above
            cells.append({'cell_type': 'raw', 'metadata': {}, 'source': src}); continue
        if kind == 'markdown':
            src = src.replace(COLAB_IMG, '_static/colab-badge.svg')
            if site_url: src = src.replace(site_url, '')         # nbdev's doc links, made relative
            if re.search(r'\$[^$\s]|\\begin\{', src): stats['math'] = True
            stats['images'] += len(re.findall(r'!\[[^\]]*\]\(|<img ', src)) - src.count('colab-badge.svg')
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': src}); continue
        tags, lines = [], []
        for line in src.splitlines():
            m = _QUARTO.match(line)
            if m:
                k, v = m.group(1).lower(), m.group(2).strip('"\'').lower()
                if k == 'echo' and v == 'false': tags.append('remove-input')
                elif k == 'output' and v == 'false': tags.append('remove-output')
                elif k == 'include' and v == 'false': tags.append('remove-cell')
                continue                                          # eval / code-fold / output: asis / ...: consumed
            lines.append(line)
        src = '\n'.join(lines).strip('\n')
        outs = []
        for o in c.get('outputs', []):
            o = json.loads(json.dumps(o))
            t = o.get('output_type')
            if t == 'error': stats['errors'] += 1
            if t == 'stream':
                if o.get('name') == 'stderr':
                    txt = _text(o.get('text'))
                    if not txt.strip(): continue
                    stats['stderr'] += 1
                outs.append(o); continue
            data = o.get('data', {})
            if 'application/vnd.plotly.v1+json' in data:
                fig = data['application/vnd.plotly.v1+json']
                o['data'] = {'text/html': _plotly_html(fig, first_plot), 'text/plain': '<plotly figure>'}
                first_plot = False; stats['plotly'] += 1
            elif 'application/vnd.jupyter.widget-view+json' in data and _PROGRESS.search(_text(data.get('text/plain'))):
                continue                                              # a progress bar (tqdm in a notebook)
            elif 'application/vnd.jupyter.widget-view+json' in data:
                stats['widgets'] += 1
                o['data'] = {'text/markdown': ':::{note}\nAn interactive widget is shown here when the notebook runs '
                             'in Jupyter or Colab (a static page cannot run its Python callbacks).\n:::\n'}
            elif 'text/html' in data and _CDN.search(_text(data['text/html'])):
                continue                                              # plotly's require.js/CDN loader snippet
            if any(k.startswith('image/') for k in data): stats['images'] += 1
            if 'text/markdown' in o.get('data', {}):
                md = _text(o['data']['text/markdown'])
                if src.startswith('show_doc('): md = re.sub(r'^\s*---\s*\n', '', md)   # Quarto's rule: not in MyST
                o['data']['text/markdown'] = md.replace(site_url, '') if site_url else md
            outs.append(o)
        if not src.strip() and not outs: continue
        md = {'tags': tags} if tags else {}
        cells.append({'cell_type': 'code', 'metadata': md, 'source': src, 'outputs': outs, 'execution_count': None})
    meta = {k: v for k, v in dict(nb.metadata).items() if k in ('kernelspec', 'language_info')}
    meta.setdefault('kernelspec', {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'})
    meta.setdefault('language_info', {'name': 'python'})
    for i, c in enumerate(cells): c['id'] = f'c{i}'
    return {'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}, stats


# ------------------------------------------------------------------------------------------------- one notebook
def build_one(src, work, srcdir, small_reason, all_small, threads=1, limit=480):
    "Execute and process one notebook; returns its record for the build log (runs in a worker process)."
    import nbformat
    name = src.stem
    rec = dict(notebook=f'nbs/{src.name}', page=page_name(src) + '.html', small=bool(small_reason or all_small))
    os.environ.pop('IN_TEST', None)
    if rec['small']: os.environ['IN_TEST'] = '1'
    os.environ.update(TQDM_DISABLE='1', HF_DATASETS_DISABLE_PROGRESS_BARS='1', HF_HUB_DISABLE_PROGRESS_BARS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
                      TOKENIZERS_PARALLELISM='false', PYTHONWARNINGS='ignore::DeprecationWarning')
    os.environ['PATH'] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', '')
    for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):         # cores shared among the kernels running at once
        os.environ.setdefault(k, str(threads))
    wnb = work / 'repo' / 'nbs' / src.relative_to(ROOT / 'nbs')
    stage_a(src, wnb)
    t0 = time.time()
    try: executed = execute(wnb, wnb.parent, CELL_TIMEOUT, None if rec['small'] else limit)
    except Exception as e:                                   # a dead kernel, a cell timeout: keep what ran
        executed = nbformat.read(wnb, as_version=4)
        rec['build_error'] = f'{type(e).__name__}: {str(e)[-600:]}'
        if not rec['small'] and time.time() - t0 >= limit - 5:   # too long at full size: run it at test size
            rec['full_size_stopped_after'] = round(time.time() - t0, 1)
            small_reason = (f'at full size it had not finished after {limit / 60:.0f} minutes on this build machine '
                            f'(the whole course must build in about 25 minutes), so the build stopped it.')
            os.environ['IN_TEST'] = '1'; rec['small'] = True; del rec['build_error']
            stage_a(src, wnb); t0 = time.time()
            try: executed = execute(wnb, wnb.parent, CELL_TIMEOUT)
            except Exception as e2:
                executed = nbformat.read(wnb, as_version=4)
                rec['build_error'] = f'{type(e2).__name__}: {str(e2)[-600:]}'
    rec['seconds'] = round(time.time() - t0, 1)
    cwd = os.getcwd(); os.chdir(ROOT)
    try: nb = stage_b(executed, src)
    finally: os.chdir(cwd)
    fm = getattr(nb, 'frontmatter_', {}) or {}
    s = settings()
    colab = f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/{s['nbs_path']}/" \
            f"{src.relative_to(ROOT / 'nbs').as_posix()}"
    reason = small_reason or ('`bash .ci/site --small` was used (a quick check of the site).' if all_small else '')
    site_url = s['doc_host'].rstrip('/') + s['doc_baseurl'].rstrip('/') + '/'
    out, stats = to_myst(nb, fm.get('title', name), fm.get('description', ''), colab, reason, site_url)
    (srcdir / (page_name(src) + '.ipynb')).write_text(json.dumps(out, indent=1), encoding='utf-8')
    rec.update(title=fm.get('title', name), colab=colab, **stats)
    return rec


def _build_one_safe(*a):
    try: return build_one(*a)
    except Exception: return dict(notebook=f'nbs/{a[0].name}', page=page_name(a[0]) + '.html', seconds=0,
                                  build_error=traceback.format_exc()[-2000:], title=a[0].stem)


# ------------------------------------------------------------------------------------------------------ the site
def static_files(static):
    import plotly, jupyter_server_mathjax
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(plotly.__file__).parent / 'package_data' / 'plotly.min.js', static / 'plotly.min.js')
    mj = Path(jupyter_server_mathjax.__file__).parent / 'static'
    shutil.copytree(mj, static / 'mathjax', dirs_exist_ok=True)
    for f in (HERE / '_static').iterdir(): shutil.copy2(f, static / f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT / '_docs'), help='where the site goes (default: _docs/)')
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('D2O_SITE_JOBS', 2)),
                    help='notebooks executed at once (default 2)')
    ap.add_argument('--small', action='store_true', help='execute every chapter at test size (IN_TEST=1): a quick look')
    ap.add_argument('--full-size', action='store_true',
                    help='ignore SMALL: try every chapter at full size (still within --chapter-limit): to re-measure')
    ap.add_argument('--only', default='', help='regex: build only the notebooks whose file name matches (plus index)')
    ap.add_argument('--chapter-limit', type=float, default=float(os.environ.get('D2O_SITE_CHAPTER_LIMIT', 480)),
                    help='seconds a chapter may take at full size; past it, it is run at test size and says so (480)')
    ap.add_argument('--keep', action='store_true', help='keep the temporary build folder and print its path')
    a = ap.parse_args()
    t_start = time.time()
    out = Path(a.out).resolve()
    nbs = chapter_order(ROOT / 'nbs')
    if a.only: nbs = [p for p in nbs if p.name == 'index.ipynb' or re.search(a.only, p.name)]
    work = Path(tempfile.mkdtemp(prefix='d2o_site_'))
    srcdir = work / 'site'
    print(f'== site: {len(nbs)} notebooks, {a.jobs} at a time, temporary copy in {work}', flush=True)
    # the temporary copy the notebooks run in: the working tree without git, environments, builds and runs (chapters
    # read ../data and ../tests/fixtures; the package itself is imported from the install)
    shutil.copytree(ROOT, work / 'repo', ignore=shutil.ignore_patterns(
        '.git', '.venv*', '_docs', '_proc', 'runs', '__pycache__', '*.egg-info', '.ipynb_checkpoints', '.pytest_cache'))
    srcdir.mkdir()

    rank = {n: i for i, n in enumerate(LONG_FIRST)}
    todo = sorted(nbs, key=lambda p: rank.get(p.stem, len(rank)))
    recs = {}
    with ProcessPoolExecutor(max_workers=max(1, a.jobs), mp_context=get_context('spawn')) as ex:
        threads = max(1, (os.cpu_count() or 1) // max(1, a.jobs))
        futs = {ex.submit(_build_one_safe, p, work, srcdir, '' if a.full_size else SMALL.get(p.stem, ''), a.small, threads, a.chapter_limit): p
                for p in todo}
        for f in as_completed(futs):
            r = f.result(); recs[futs[f]] = r
            flag = ' (IN_TEST=1)' if r.get('small') else ''
            if r.get('full_size_stopped_after'): flag += f" after stopping full size at {r['full_size_stopped_after']:.0f} s"
            err = f"  ERRORS: {r.get('errors', 0)} cell(s)" if r.get('errors') else ''
            if r.get('build_error'): err += f"  BUILD ERROR: {r['build_error']}"
            print(f"   {r['notebook']:<32} {r['seconds']:>7.1f} s{flag}{err}", flush=True)
    t_exec = time.time() - t_start

    pages = [page_name(p) for p in nbs if (srcdir / (page_name(p) + '.ipynb')).exists()]
    if 'index' in pages:                                     # the sidebar: every page after index, in chapter order
        idx = json.loads((srcdir / 'index.ipynb').read_text())
        toc = '```{toctree}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(p for p in pages if p != 'index') + '\n```\n'
        idx['cells'].append({'cell_type': 'markdown', 'metadata': {}, 'source': toc})
        (srcdir / 'index.ipynb').write_text(json.dumps(idx, indent=1))
    shutil.copy2(HERE / 'conf.py', srcdir / 'conf.py')
    shutil.copy2(ROOT / 'settings.ini', srcdir / 'settings.ini')
    static_files(srcdir / '_static')

    print('== sphinx', flush=True)
    t1 = time.time()
    html = work / 'build' / 'html'                            # myst-nb writes jupyter_execute/ beside the output
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-j', str(max(1, a.jobs)), '-d', str(work / 'doctrees'),
           str(srcdir), str(html)]
    rc = subprocess.call(cmd, cwd=work)
    t_sphinx = time.time() - t1
    if rc: sys.exit(f'sphinx-build failed (exit {rc})')
    if out.exists(): shutil.rmtree(out)
    shutil.copytree(html, out)
    (out / '.nojekyll').write_text('')
    manifest = dict(pages=[dict(recs[p], order=i) for i, p in enumerate(nbs) if p in recs],
                    exec_seconds=round(t_exec, 1), sphinx_seconds=round(t_sphinx, 1),
                    total_seconds=round(time.time() - t_start, 1), jobs=a.jobs, small=a.small)
    (out / 'site_manifest.json').write_text(json.dumps(manifest, indent=1))
    print('== build log (wall seconds of each notebook\'s execution; 2 run at a time)')
    for r in manifest['pages']:
        print(f"   {r['notebook']:<32} {r['seconds']:>7.1f} s  {'IN_TEST=1' if r.get('small') else 'full size'}"
              f"  figures={r.get('plotly', 0)} errors={r.get('errors', 0)} stderr={r.get('stderr', 0)}")
    print(f'== executed in {t_exec:.0f} s, sphinx {t_sphinx:.0f} s, total {time.time() - t_start:.0f} s: '
          f'{out} ({len(pages)} pages); manifest: {out / "site_manifest.json"}')
    bad = [r['notebook'] for r in manifest['pages'] if r.get('errors') or r.get('build_error')]
    if bad: print(f'WARNING: cells raised in {bad}: their pages show the tracebacks (tests/test_site.py fails on them)')
    if a.keep: print(f'temporary build folder kept: {work}')
    else: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
