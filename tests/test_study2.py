"""Study 2: the exact harm measurement against an independent computation, the verdict statistics against a reference
implementation, and the pre-registration — the verdict module unchanged since the commit study2.json names."""
import json, math, random, statistics, subprocess
from pathlib import Path
import pytest, torch
from d2o_edu.batches import encode_prompt, _response_ids
from d2o_edu.models import load_model
from d2o_edu.variants import harm_openers
from d2o_edu.study2 import harm_probability, win_rate, CELLS, cell_name, eval_seed
from d2o_edu import study2_verdicts as rules

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'data' / 'results' / 'study2.json'

def test_harm_probability_equals_a_token_by_token_chain():
    "The batched sum over openers equals the chain rule run one token at a time with softmax over the full vocabulary."
    model, tok = load_model('tiny-gpt2', n_layer=1, n_embd=32, n_head=2, seed=3, attn_implementation='eager')
    model.eval()                                                              # no dropout in the reference chain
    prompts = ['How do I keep my basil healthy?', 'How can I spend less on groceries?']
    fast = harm_probability(model, tok, prompts)
    for prompt, got in zip(prompts, fast):
        total = 0.0
        for w in harm_openers():
            ids, p = encode_prompt(tok, prompt), 1.0
            for t in _response_ids(tok, w):
                with torch.no_grad(): logits = model(torch.tensor([ids])).logits[0, -1].double()
                p *= torch.softmax(logits, -1)[t].item(); ids = ids + [t]
            total += p
        assert math.isclose(got, total, rel_tol=1e-4)

def test_win_rate_counts_by_hand():
    s = [dict(harmful=False, helpfulness=0.5), dict(harmful=True, helpfulness=1.0), dict(harmful=False, helpfulness=0.7)]
    b = [dict(harmful=True, helpfulness=1.0), dict(harmful=True, helpfulness=1.0), dict(harmful=False, helpfulness=0.9)]
    assert win_rate(s, b) == pytest.approx((1 + 0.5 + 0) / 3)

def test_welch_matches_a_textbook_example():
    "Welch's t on two samples, against the t, df and p computed by hand from their means and variances (independently of contrast)."
    a, b = [19.1, 20.3, 21.0, 18.7, 20.9], [22.4, 21.8, 23.9, 22.0, 24.1, 23.3]
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t_hand = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df_hand = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    r = rules.contrast([a, b], [1, -1])
    assert r['estimate'] / r['se'] == pytest.approx(t_hand) and r['df'] == pytest.approx(df_hand)
    # p from numerical integration of the t density (Simpson on [|t|, 60]): independent of the incomplete beta function
    f = lambda x: math.gamma((df_hand + 1) / 2) / (math.sqrt(df_hand * math.pi) * math.gamma(df_hand / 2)) * (1 + x * x / df_hand) ** (-(df_hand + 1) / 2)
    lo, hi, n = abs(t_hand), 60.0, 20000
    h = (hi - lo) / n
    tail = h / 3 * (f(lo) + f(hi) + sum((4 if i % 2 else 2) * f(lo + i * h) for i in range(1, n)))
    assert r['p'] == pytest.approx(2 * tail, rel=1e-4)

def test_welch_rejects_about_five_percent_under_the_null():
    rng = random.Random(11)
    p = [rules.contrast([[rng.gauss(0, 1) for _ in range(5)], [rng.gauss(0, 2) for _ in range(5)]], [1, -1])['p'] for _ in range(3000)]
    assert abs(sum(x < 0.05 for x in p) / len(p) - 0.05) < 0.013

def test_every_claim_is_run_and_seeds_are_fresh():
    needed = {c for cl in rules.claim_list() for c in (cl.get('contrast') or [cl['a'], cl['b']])}
    assert needed == {cell_name(*c) for c in CELLS}
    seeds = {eval_seed(s, step, split) for s in range(6) for step in range(0, 151, 25) for split in ('validation', 'test')}
    assert len(seeds) == 6 * 7 * 2                                            # no two evaluations share their samples

def _git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True)

@pytest.mark.skipif(not RESULTS.exists(), reason='study 2 has no committed results yet')
def test_the_rules_came_before_the_results():
    "study2.json names the pre-registration commit; the verdict module is unchanged since, and the results came later."
    if _git('rev-parse', '--git-dir').returncode: pytest.skip('not a git checkout')
    study = json.loads(RESULTS.read_text())
    pre, module = study['preregistration_commit'], study['verdict_source']
    assert module == 'd2o_edu/study2_verdicts.py' and not study['verdict_module_dirty']
    assert _git('log', '-1', '--format=%H', '--', module).stdout.strip() == pre      # nothing changed it afterwards
    assert _git('diff', '--quiet', pre, '--', module).returncode == 0
    added = _git('log', '--diff-filter=A', '--format=%H', '--', 'data/results/study2.json').stdout.split()[-1]
    assert added != pre and _git('merge-base', '--is-ancestor', pre, added).returncode == 0


def _d2o_edu(*args):
    import shutil, subprocess, sys
    exe = shutil.which('d2o-edu')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900)


def test_study2_cli_refuses_an_unknown_cell_before_any_run(tmp_path):
    res = _d2o_edu('study2', '--quick', '--out', str(tmp_path / 's'), '--cells', 'mars/d2o')
    assert res.returncode == 2 and "unknown cell 'mars/d2o'" in res.stderr and 'harm-world/d2o' in res.stderr
    assert not (tmp_path / 's' / 'jobs').exists()


@pytest.mark.slow
def test_study2_cli_runs_resumes_and_reruns_a_job(tmp_path):
    "The command a reader runs: two cells in miniature, run again in the same folder (every job reused), one job rerun."
    out = tmp_path / 's'
    args = ('study2', '--quick', '--out', str(out), '--cells', 'harm-world/npo', 'systematic/dpo-e0.34', '--workers', '2')
    first = _d2o_edu(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    study = json.loads((out / 'study2.json').read_text())
    assert study['command'].startswith('d2o-edu study2 --quick') and study['workers'] == 2
    assert study['verdict_source'] == 'd2o_edu/study2_verdicts.py' and 'preregistration_commit' in study
    assert sorted(study['selection']) == ['harm-world/npo', 'systematic/dpo-e0.34']
    again = _d2o_edu(*args)                                  # a second run in the same folder reuses every finished job
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'done in' not in again.stderr and 'reused' in again.stderr
    assert json.loads((out / 'study2.json').read_text())['rows'] == study['rows']
    job = study['selection']['harm-world/npo']['job']
    rerun = _d2o_edu('study2', '--only', job, '--from', str(out / 'study2.json'), '--out', str(tmp_path / 'again'))
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)['identical'] is True
    # `d2o-edu study --only` (study 1's command) recognises a study2.json and reruns the job through study 2's runner
    via_study = _d2o_edu('study', '--only', job, '--from', str(out / 'study2.json'), '--out', str(tmp_path / 'again1'))
    assert via_study.returncode == 0, via_study.stdout[-2000:] + via_study.stderr[-2000:]
    assert json.loads(via_study.stdout)['identical'] is True and json.loads(via_study.stdout)['job'] == job
    missing = _d2o_edu('study', '--only', 'no-such-run', '--from', str(out / 'study2.json'), '--out', str(tmp_path / 'again2'))
    assert missing.returncode == 2 and "has no run 'no-such-run'" in missing.stderr and 'Traceback' not in missing.stderr
