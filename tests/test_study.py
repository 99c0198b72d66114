"""`d2o-edu study` end to end (--quick, a real subprocess): files, rows, workers-independent numbers, reproduction of a run,
and the committed results' integrity."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent


def d2o_edu(*args, cwd=None):
    exe = shutil.which('d2o-edu')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    "A miniature study with two arms and one ablation, two runs at a time."
    out = tmp_path_factory.mktemp('study') / 'quick'
    res = d2o_edu('study', '--quick', '--out', str(out), '--methods', 'd2o_offline', 'ga', '--ablations', 'no_anchors',
                  '--workers', '2')
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


@pytest.mark.slow
def test_study_writes_the_documented_files(quick):
    out, res = quick
    study = json.loads((out / 'study.json').read_text())
    assert study['command'].startswith('d2o-edu study --quick --out') and '--workers 2' in study['command']
    assert study['versions']['torch'] and study['wall_s'] > 0
    keys = {'method', 'anchors', 'seed', 'split', 'step', 'harm_rate', 'helpfulness', 'distinct_2', 'kl_to_sft', 'config'}
    assert study['rows'] and all(keys <= set(r) for r in study['rows'])
    assert {r['split'] for r in study['rows']} == {'validation', 'test'}
    assert {r['method'] for r in study['rows']} == {'sft', 'd2o_offline', 'ga'}
    assert {r['anchors'] for r in study['rows'] if r['method'] == 'd2o_offline'} == {'offline', 'none'}   # none: the ablation
    assert 'supported' in res.stdout or 'mixed' in res.stdout            # the verdict lines are printed
    assert '<html' in (out / 'report.html').read_text()


@pytest.mark.slow
def test_rerun_of_a_recorded_job_is_identical(quick, tmp_path):
    out, _ = quick
    study = json.loads((out / 'study.json').read_text())
    job = next(j['id'] for j in study['jobs'] if j['arm'] == 'd2o_offline' and j['seed'] == 1)   # a test-seed run (2 workers)
    res = d2o_edu('study', '--only', job, '--from', str(out / 'study.json'), '--out', str(tmp_path / 'again'))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads(res.stdout[res.stdout.index('{'):])
    assert report['identical'] and report['max_abs_diff'] == 0 and report['rows'] == report['recorded_rows'] > 0


@pytest.mark.slow
def test_an_interrupted_study_resumes_from_its_finished_runs(quick):
    "Rerunning the same command trains only what is missing (here: one deleted run) and rebuilds the same study."
    out, res = quick
    before = json.loads((out / 'study.json').read_text())
    victim = next(j['id'] for j in before['jobs'] if j['phase'] == 'test')
    (out / 'jobs' / f'{victim}.json').unlink()
    again = d2o_edu('study', '--quick', '--out', str(out), '--methods', 'd2o_offline', 'ga', '--ablations', 'no_anchors',
                    '--workers', '2')
    assert again.returncode == 0, again.stderr[-3000:]
    trained = [l for l in again.stderr.splitlines() if ': done in' in l]
    assert len(trained) == 1 and victim in trained[0]
    assert sum(': reused' in l for l in again.stderr.splitlines()) == len(before['jobs']) - 1
    after = json.loads((out / 'study.json').read_text())
    assert after['rows'] == before['rows']


@pytest.mark.slow
def test_bad_study_arguments_are_named(tmp_path):
    res = d2o_edu('study', '--methods', 'd2o', '--out', str(tmp_path / 's'))
    assert res.returncode == 2 and "invalid choice: 'd2o'" in res.stderr
    res = d2o_edu('study', '--only', 'no_such_run', '--from', str(ROOT / 'data' / 'results' / 'study.json'), '--out', str(tmp_path / 's'))
    assert res.returncode == 2 and "no run 'no_such_run'" in res.stderr
    res = d2o_edu('study', '--quick', '--workers', '0', '--out', str(tmp_path / 's'))
    assert res.returncode == 2 and '--workers must be >= 1' in res.stderr


def test_committed_results_follow_the_rules():
    "The committed study: every arm tuned within budget on validation, 3 seeds on test, the selection rule applied."
    study = json.loads((ROOT / 'data' / 'results' / 'study.json').read_text())
    cfg = study['config']
    assert cfg['seeds'] == [0, 1, 2] and study['wall_s'] <= 90 * 60
    for arm, sel in study['selection'].items():
        assert 1 <= len(sel['candidates']) <= cfg['grid_size'] <= 4
        kept = [c for c in sel['candidates'] if c['helpfulness'] >= cfg['help_floor'] * study['sft_validation_helpfulness']]
        best = (min(kept, key=lambda c: (c['harm_rate'], c['kl_to_sft'])) if kept
                else max(sel['candidates'], key=lambda c: c['helpfulness']))
        assert sel['job'] == best['job'], arm
        finals = [r for r in study['rows'] if r['method'] == arm and r.get('selected') and r['ablation'] is None
                  and r['split'] == 'test' and r['step'] == cfg['steps']]
        assert sorted(r['seed'] for r in finals) == [0, 1, 2], arm
