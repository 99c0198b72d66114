"""Colab installs the course with `pip install git+…`: a built wheel, without the checkout. The chapters must still find the
data they read from outside `nbs/` (data/, tests/fixtures/), shipped inside the package."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_built_wheel_carries_the_data_and_a_chapter_runs_from_it(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', '.venv*', '_docs', '_proc', 'runs', 'build', '*.egg-info', '__pycache__'))
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / 'dist').glob('d2o_edu-*.whl'))
    env = tmp_path / 'site'                                           # the wheel installed on its own; torch & co. from here
    py = Path(sys.executable)
    inst = subprocess.run([str(py), '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(env), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = tmp_path / 'colab'; work.mkdir()                          # no checkout anywhere near
    shutil.copy(ROOT / 'nbs' / '04c_sources.ipynb', work)
    check = """
import json, d2o_edu
from pathlib import Path
from d2o_edu.harm_world import _repo_data_dir, fixtures_dir
from d2o_edu.study import load_results
print(json.dumps({'package': d2o_edu.__file__, 'data': str(_repo_data_dir()), 'fixtures': str(fixtures_dir()),
                  'study_rows': len(load_results()['rows']), 'fixture_files': sorted(p.name for p in fixtures_dir().iterdir())}))
"""
    run_env = {'PATH': f"{py.parent}:/usr/bin:/bin", 'PYTHONPATH': str(env), 'HOME': str(tmp_path),
               'D2O_EDU_CACHE': str(tmp_path / 'cache'), 'HF_HUB_OFFLINE': '1', 'IN_TEST': '1'}
    res = subprocess.run([str(py), '-c', check], capture_output=True, text=True, cwd=work, env=run_env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    site = str(env)
    assert got['package'].startswith(site), got                       # the wheel's copy, not the checkout's
    assert got['data'].startswith(site) and got['fixtures'].startswith(site), got
    assert got['study_rows'] > 0 and 'pku_saferlhf_sample.jsonl' in got['fixture_files']
    chapter = ("from pathlib import Path; from nbdev.test import test_nb; "
               "ok, t = test_nb(Path('04c_sources.ipynb'), skip_flags=['notest', 'slow'], showerr=True, basepath=Path('.')); "
               "raise SystemExit(0 if ok else 1)")
    ran = subprocess.run([str(py), '-c', chapter], capture_output=True, text=True, cwd=work, env=run_env, timeout=900)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
