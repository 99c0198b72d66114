"""`d2o-edu bench` (chapter 13a) as a user runs it, with --quick shapes: every ratio of the issue is measured on its models,
every repetition is kept, the table is printed. Timings are never asserted (a loaded machine would fail at random);
what can be checked exactly is: the JSON's structure, that each `met` agrees with its goal, and the reference-forward
counter against an independent count of the pipeline's sequences."""
import json, shutil, subprocess, sys
import pytest
from d2o_edu.bench import GOALS


def _cli(*args):
    exe = shutil.which('d2o-edu')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900)


def test_quick_bench_writes_every_ratio_with_its_repetitions(tmp_path):
    out = tmp_path / 'bench.json'
    res = _cli('bench', '--quick', '--reps', '2', '--out', str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(out.read_text())
    assert set(record['ratios']) == set(GOALS)
    for name, per_model in record['ratios'].items():
        assert per_model, name
        for model, r in per_model.items():
            assert r['ratio'] > 0 and r['reps'] and all(len(v) >= 1 for v in r['reps'].values()), (name, model)
            op, goal = GOALS[name]
            assert r['met'] == {'<=': r['ratio'] <= goal, '>=': r['ratio'] >= goal, '<': r['ratio'] < goal,
                                '==': r['ratio'] == goal}[op], (name, model)
            assert name in res.stdout
    timed = record['ratios']['d2o_step_over_bare_fwd_bwd']
    assert set(timed) == {'tiny-gpt2', 'gpt2-small-shape'}
    assert all(len(r['reps']['d2o_step_s']) == 2 == len(r['reps']['bare_fwd_bwd_s']) for r in timed.values())
    refs = record['ratios']['reference_forwards_per_unique_sequence']['tiny-gpt2']
    assert refs['forwards'] == refs['expected_sequences'] == 16 * (4 + 1) + 8   # K=4 anchors + 1 negative per row, 8 evals
    assert {'versions', 'threads', 'wall_s', 'machine', 'config'} <= set(record)
    assert {'torch', 'transformers', 'trl'} <= set(record['versions']) and record['quick']


def test_bench_rejects_bad_arguments():
    res = _cli('bench', '--reps', '0')
    assert res.returncode != 0 and '--reps must be >= 1' in res.stderr
