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


# --- the statistics of the verdicts (no training: the committed study.json and pure functions) ---

def test_t_distribution_matches_tables_and_closed_forms():
    "Student's t from the incomplete beta function, against printed t-table values and the closed forms for ν = 1, 2, 4."
    import math
    from d2o_edu.study import t_cdf, t_quantile
    for df, q in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert abs(t_quantile(0.975, df) - q) < 5e-4, df
    assert abs(t_quantile(0.995, 4) - 4.604) < 5e-4 and abs(t_quantile(0.95, 2) - 2.920) < 5e-4
    for t in (-8.0, -2.0, -0.3, 0.0, 0.7, 3.0, 25.0):
        assert abs(t_cdf(t, 1) - (0.5 + math.atan(t) / math.pi)) < 1e-12
        assert abs(t_cdf(t, 2) - (0.5 + t / (2 * math.sqrt(2 + t * t)))) < 1e-12
        u = 1 + t * t / 4
        assert abs(t_cdf(t, 4) - (0.5 + 3 / 8 * t / math.sqrt(u) * (1 - t * t / (12 * u)))) < 1e-12
        assert abs(t_cdf(t, 1e9) - 0.5 * (1 + math.erf(t / math.sqrt(2)))) < 1e-6
    for df in (1.3, 2.0, 3.7, 12.0):   # quantile and CDF are inverses, for any real ν
        for p in (0.6, 0.9, 0.975, 0.999):
            assert abs(t_cdf(t_quantile(p, df), df) - p) < 1e-10


def test_welch_degrees_of_freedom_and_interval():
    import math
    from d2o_edu.study import welch, t_quantile
    w = welch([0., 1., 2.], [1., 2., 3.])                       # equal n and SDs: ν = 2(n − 1)
    assert abs(w['df'] - 4) < 1e-12 and abs(w['t'] + 1 / math.sqrt(2 / 3)) < 1e-12
    assert abs(w['hi'] - w['diff'] - t_quantile(0.975, 4) * math.sqrt(2 / 3)) < 1e-9
    a, b = [1., 2., 4., 7.], [3., 3.5, 4.]                      # unequal n and SDs: Welch–Satterthwaite by hand
    va, vb = 7.0 / 1, 0.25                                      # sample variances: 21 / 3 and 0.5 / 2
    ua, ub = va / 4, vb / 3
    assert abs(welch(a, b)['df'] - (ua + ub) ** 2 / (ua ** 2 / 3 + ub ** 2 / 2)) < 1e-12
    assert welch([1., 2., 3.], [5., 5., 5.])['df'] == 2.0       # one SD of 0: the other's n − 1
    exact = welch([1., 1., 1.], [2., 2., 2.])
    assert exact['p'] == 0.0 and exact['lo'] == exact['hi'] == -1.0


def test_welch_holds_five_percent_where_two_se_does_not():
    "Simulated null comparisons, 3 seeds against 3: Welch's false-positive rate is about 5 %, the old '2 SE' rule's 12–18 %."
    import torch
    from d2o_edu.study import welch
    for sd_b, seed in ((1.0, 0), (0.1, 1)):
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randn(4000, 3, generator=g, dtype=torch.float64), sd_b * torch.randn(4000, 3, generator=g, dtype=torch.float64)
        ws = [welch(x, y) for x, y in zip(a.tolist(), b.tolist())]
        welch_rate, two_se_rate = sum(w['p'] < 0.05 for w in ws) / 4000, sum(abs(w['diff']) > 2 * w['se'] for w in ws) / 4000
        assert 0.025 < welch_rate < 0.07 and 0.10 < two_se_rate < 0.21, (sd_b, welch_rate, two_se_rate)


def test_fmt_prints_a_zero_sd():
    from d2o_edu.study import _fmt
    assert _fmt(0.015, 0.0) == '0.015 ± 0.000' and _fmt(0.5) == '0.500' and _fmt(None) == 'n/a'


def test_verdicts_of_the_committed_study_old_and_new():
    "The committed study under 92a248c's criteria, ab46740's (> 2 SE) and Welch's test: the rows the chapter discusses."
    from d2o_edu.study import load_results, verdicts, verdicts_92a248c, verdict_history
    study = load_results(ROOT / 'data' / 'results' / 'study.json')
    committed = [v['verdict'] for v in verdicts(study, test='2se') if v['key'] != 'help_vs_dpo']
    assert committed == ['not supported', 'not supported', 'supported', 'mixed', 'not supported', 'not supported', 'mixed',
                         'supported', 'not supported', 'not supported']      # what ab46740's verdicts() printed
    old = {v['claim']: v['verdict'] for v in verdicts_92a248c(study)}
    assert old['Gradient ascent collapses where D²O does not'] == 'not supported'
    assert old['D²O reaches lower harm than DPO on the noisy original pairs'] == 'mixed'
    H = {r['key']: r for r in verdict_history(study)}
    assert H['ga_collapses']['ab46740'] == 'supported' and H['help_vs_dpo']['now (Welch)'] == 'not supported'
    V = {v['key']: v for v in verdicts(study)}
    c = V['help_vs_dpo']['comparisons'][0]
    assert c['diff'] < 0 and c['hi'] < 0 and abs(c['diff'] + 0.100) < 0.002       # D²O less helpful than DPO
    assert V['anchors_needed']['verdict'] == 'not supported'                       # two single runs: √2·σ, t quantile
    assert all(0 <= c['p'] <= 1 and c['lo'] <= c['diff'] <= c['hi'] for v in V.values() for c in v['comparisons'])


def test_verdicts_92a248c_is_that_commits_code():
    "verdicts_92a248c is commit 92a248c's verdicts(), changed only by the renames its docstring names."
    import inspect, re
    from d2o_edu import study as S
    try:
        old = subprocess.run(['git', 'show', '92a248c:d2o_edu/study.py'], capture_output=True, text=True, cwd=ROOT, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip('git not available')
    if old.returncode != 0: pytest.skip('commit 92a248c not in this clone')
    body = lambda src: re.sub(r'"""[\s\S]*?"""', '', src[src.index('\n') + 1:], count=1)   # drop the def line and the docstring
    want = old.stdout[old.stdout.index('def verdicts(study)'):]
    want = want[:want.index('\n    return out\n') + len('\n    return out\n')]
    want = re.sub(r'\blower\(', '_lower_92a248c(', want).replace('VERDICT[', 'VERDICT_92a248c[')
    assert body(inspect.getsource(S.verdicts_92a248c)) == body(want)
    lower_src = old.stdout[old.stdout.index('def lower('):old.stdout.index('\nVERDICT =')]
    assert body(inspect.getsource(S._lower_92a248c)).strip() == body(lower_src).strip()


def test_a_damaged_job_or_sft_file_is_named_with_what_to_do(tmp_path):
    "A job file cut short (a full disk, a killed copy) is an error naming the file and the fix, not a bare JSONDecodeError."
    from d2o_edu.study import grid, make_job, prepare_sft, quick_config, run_job
    cfg = quick_config()
    job = make_job('ga', 0, grid('ga')[0], cfg, 'tune')
    (tmp_path / 'jobs').mkdir()
    (tmp_path / 'jobs' / f"{job['id']}.json").write_text('{"job": {"id": ')
    with pytest.raises(ValueError, match=rf"{job['id']}\.json: not valid JSON .*line 1.*delete it to run the job again"):
        run_job(job, cfg, tmp_path)
    (tmp_path / 'sft').mkdir()
    (tmp_path / 'sft' / 'study_sft.json').write_text('{"key": ')
    with pytest.raises(ValueError, match=r'study_sft\.json: not valid JSON .*delete it to train the SFT model again'):
        prepare_sft(cfg, tmp_path)
