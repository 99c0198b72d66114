"""Run every notebook in `nbs/` as a test (nbdev's runner, `IN_TEST=1`, cells flagged `slow`/`notest` skipped: the slow
tier, `pytest --slow`); and, in the fast tier, check that `d2o_edu/` is what `nbdev_export` makes of the notebooks."""
import shutil
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent / 'nbs'
LIB = NBS.parent / 'd2o_edu'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))


def test_library_is_what_nbdev_export_makes_of_the_notebooks(tmp_path):
    """Each notebook's `#| default_exp X` module is d2o_edu/X.py exactly as it is here, and every module in d2o_edu/
    comes from a notebook. Exported into a copy (tmp_path/nbs -> tmp_path/d2o_edu), so d2o_edu/ is never touched."""
    from nbdev.export import nb_export
    lib = tmp_path / LIB.name
    lib.mkdir()
    for nb in NBS.rglob('*.ipynb'):                        # what nbdev_export reads: not _*, not .*, subfolders too
        rel = nb.relative_to(NBS)
        if any(part.startswith(('_', '.')) for part in rel.parts): continue
        (tmp_path / 'nbs' / rel).parent.mkdir(parents=True, exist_ok=True)
        nb_export(str(shutil.copy(nb, tmp_path / 'nbs' / rel)), lib_path=str(lib))
    made = {p.relative_to(lib).as_posix(): p.read_text() for p in lib.rglob('*.py')}
    have = {p.relative_to(LIB).as_posix(): p.read_text() for p in LIB.rglob('*.py') if p.name not in ('__init__.py', '_modidx.py')}
    assert 'core.py' in made and 'cli.py' in made, sorted(made)
    assert not sorted(set(made) - set(have)), f'notebooks export modules that d2o_edu/ lacks (run nbdev_export): {sorted(set(made) - set(have))}'
    assert not sorted(set(have) - set(made)), f'modules in d2o_edu/ that no notebook exports: {sorted(set(have) - set(made))}'
    stale = sorted(m for m in made if made[m] != have[m])
    assert not stale, f'd2o_edu/ is not what nbdev_export makes of nbs/ (run nbdev_export): {stale}'


@pytest.mark.slow
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(nb, monkeypatch):
    from nbdev.test import test_nb
    monkeypatch.setenv('IN_TEST', '1')
    ok, secs = test_nb(nb, skip_flags=['notest', 'slow'], showerr=True, basepath=NBS.parent)
    assert ok, f'{nb.name} failed (traceback above)'
