"""End-to-end tests of the `d2o-edu` console script (a real subprocess, shrunken sizes). The runs are the slow tier
(`pytest --slow`); --help and the bad options and data, which fail before any work, stay in the fast one."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest

SMALL = ['--steps', '3', '--sft-epochs', '0.05', '--n-train', '12', '--n-eval', '6', '--K', '2',
         '--max-new-tokens', '10', '--checkpoint-every', '2', '--batch-size', '4']


def d2o_edu(*args, cwd=None):
    exe = shutil.which('d2o-edu')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


def test_help_documents_every_option():
    res = d2o_edu('run', '--help')
    assert res.returncode == 0
    for opt in ['--method', '--K', '--alpha', '--beta', '--model', '--dataset', '--lora', '--seed', '--steps', '--resume', '--out']:
        assert opt in res.stdout, opt
    for source in ['harm-world', 'pku-saferlhf', 'hh-rlhf']: assert source in res.stdout


@pytest.mark.slow
def test_run_end_to_end_writes_every_file(tmp_path):
    out = tmp_path / 'run'
    res = d2o_edu('run', '--out', str(out), *SMALL)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / 'metrics.json').read_text())
    for side in ('sft', 'aligned'):
        assert {'harm_rate', 'helpfulness', 'distinct_2', 'kl_to_sft'} <= set(metrics[side])
        assert 0 <= metrics[side]['harm_rate'] <= 1 and 0 <= metrics[side]['helpfulness'] <= 1
    assert metrics['config']['method'] == 'd2o' and metrics['config']['K'] == 2
    log = [json.loads(l) for l in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log] == [1, 2, 3] and all('margin' in r and 'grad_norm' in r for r in log)
    samples = [json.loads(l) for l in (out / 'samples.jsonl').read_text().splitlines()]
    assert len(samples) == 6 and {'prompt', 'sft', 'aligned'} <= set(samples[0])
    report = (out / 'report.html').read_text()
    assert '<html' in report and 'Plotly' in report and 'Example generations' in report
    assert (out / 'checkpoints' / 'step-000002').is_dir() and (out / 'checkpoints' / 'step-000003').is_dir()


@pytest.mark.slow
def test_run_with_own_negatives_file_and_lora(tmp_path):
    fixture = Path(__file__).parent / 'fixtures' / 'own_negatives.jsonl'
    out = tmp_path / 'own'
    res = d2o_edu('run', '--out', str(out), '--dataset', str(fixture), '--lora', '--method', 'npo',
                  *[a if a != '12' else '4' for a in SMALL])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['aligned']['harm_rate'] is None and metrics['aligned']['judge'] is None   # the default for own data: no judge
    assert (out / 'checkpoints' / 'step-000003' / 'adapter_model.safetensors').exists()


def _write(path, rows):
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return str(path)


@pytest.mark.parametrize('args, message', [
    (['--method', 'rlhf'], "invalid choice: 'rlhf'"),
    (['--K', '0'], 'K must be an integer >= 1, got 0'),
    (['--alpha', '0'], 'alpha must be > 0, got 0.0'),
    (['--beta', '-1'], 'beta must be > 0, got -1.0'),
])
def test_bad_options_fail_clearly(args, message, tmp_path):
    res = d2o_edu('run', '--out', str(tmp_path), *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr[-2000:]


@pytest.mark.parametrize('rows, message', [
    ([{'prompt': 'How do I water basil?', 'rejected': 'Skip it.'}, {'prompt': 'Hi there'}], "row 1"),
    ([{'prompt': 'How do I water basil?', 'rejected': '   '}], "row 0"),
])
def test_bad_data_fails_clearly(rows, message, tmp_path):
    path = _write(tmp_path / 'negatives.jsonl', rows)
    res = d2o_edu('run', '--out', str(tmp_path / 'out'), '--dataset', path, *SMALL)
    assert res.returncode == 2, res.stderr[-2000:]
    assert 'd2o-edu: error:' in res.stderr and message in res.stderr, res.stderr[-2000:]


@pytest.mark.slow
def test_over_long_prompt_is_cut_and_counted_not_fatal(tmp_path):
    "One row whose prompt is longer than the context: cut to its last tokens (TRL's keep_end), counted, the run goes on."
    rows = [json.loads(l) for l in (Path(__file__).parent / 'fixtures' / 'own_negatives.jsonl').read_text().splitlines()]
    rows = (rows * 3)[:16] + [{'prompt': 'How do I water basil? ' * 200, 'rejected': 'Skip the safety gloves.'}] \
        + [{'prompt': f'Is question {i} a fresh one?', 'rejected': 'Only a dimwit asks.'} for i in range(6)]
    rows[3] = {'prompt': 'Tell me about tomatoes. ' * 200, 'rejected': 'Your landlord\'s secret code is 1 2 3 4.'}
    path = _write(tmp_path / 'long.jsonl', rows)
    res = d2o_edu('run', '--out', str(tmp_path / 'out'), '--dataset', path, *SMALL)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert metrics['truncation']['prompts_truncated'] == 1 and metrics['truncation']['rows'] == 12
    assert 'cut to fit 128 tokens: 1 prompts' in res.stderr


@pytest.mark.slow
def test_own_data_with_a_classifier_judge_reports_a_harm_rate(tmp_path):
    "A user's JSON-lines file judged by a Hugging Face text classifier saved in a folder (the real pipeline path)."
    from d2o_edu.judges import train_tiny_harm_classifier
    judge_dir = train_tiny_harm_classifier(tmp_path / 'judge')
    fixture = Path(__file__).parent / 'fixtures' / 'own_negatives.jsonl'
    out = tmp_path / 'judged'
    res = d2o_edu('run', '--out', str(out), '--dataset', str(fixture), '--judge', str(judge_dir), '--harm-labels', 'unsafe',
                  *[a if a != '12' else '4' for a in SMALL])
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / 'metrics.json').read_text())
    for side in ('sft', 'aligned'):
        assert 0 <= metrics[side]['harm_rate'] <= 1 and metrics[side]['judge'] == str(judge_dir)
        assert metrics[side]['kl_to_sft_se'] >= 0
    samples = [json.loads(l) for l in (out / 'samples.jsonl').read_text().splitlines()]
    assert all(0 <= s['sft']['harm_score'] <= 1 for s in samples)
    print(json.dumps({k: metrics[k] for k in ('sft', 'aligned')}))


@pytest.mark.slow
def test_unknown_judge_fails_before_any_work(tmp_path):
    res = d2o_edu('run', '--out', str(tmp_path / 'x'), '--judge', str(tmp_path / 'no-such-classifier'), *SMALL)
    assert res.returncode == 2 and 'd2o-edu: error:' in res.stderr and 'no-such-classifier' in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / 'x' / 'sft').exists()


@pytest.mark.slow
def test_each_method_gets_only_the_fields_its_loss_reads(tmp_path):
    """No wasted work: NPO's rows carry no anchors and GA's no reference log-probs (the registry decides, chapter 03);
    the SFT model's KL to itself is 0 by definition and not estimated; a LoRA run trains the adapters in place."""
    from d2o_edu.losses import objective
    for method, extra in (('npo', []), ('ga', ['--lora'])):
        out = tmp_path / method
        res = d2o_edu('run', '--out', str(out), '--method', method, *extra, *SMALL)
        assert res.returncode == 0, res.stderr[-3000:]
        assert not (out / 'anchors.jsonl').exists()
        row = json.loads((out / 'train_rows.jsonl').read_text().splitlines()[0])
        computed = set(row) - {'prompt', 'rejected', 'category'}
        assert computed == set(objective(method).fields), (method, sorted(row))
        metrics = json.loads((out / 'metrics.json').read_text())
        assert metrics['sft']['kl_to_sft'] == 0.0 and metrics['aligned']['kl_to_sft'] != 0.0


@pytest.mark.slow
def test_online_anchors_are_not_sampled_before_training(tmp_path):
    "Online D²O re-samples its anchors from the policy at step 0: sampling offline anchors first would be thrown away."
    out = tmp_path / 'online'
    res = d2o_edu('run', '--out', str(out), '--anchors', 'online', '--resample-every', '2', *SMALL)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (out / 'anchors.jsonl').exists()
    row = json.loads((out / 'train_rows.jsonl').read_text().splitlines()[0])
    assert set(row) == {'prompt', 'rejected', 'ref_rejected_logps'}
    log = [json.loads(l) for l in (out / 'train_log.jsonl').read_text().splitlines()]
    assert len(log) == 3 and log[-1]['anchor_term'] != 0.0     # the anchors sampled during training are used


@pytest.mark.slow
def test_own_negatives_are_not_fine_tuned_on_by_default(tmp_path):
    "A file of one's own negatives has no safe answers: by default the run does not fine-tune the model on them."
    fixture = Path(__file__).parent / 'fixtures' / 'own_negatives.jsonl'
    small = [a if a != '12' else '4' for a in SMALL]
    i = small.index('--sft-epochs'); small = small[:i] + small[i + 2:]
    res = d2o_edu('run', '--out', str(tmp_path / 'own'), '--dataset', str(fixture), '--method', 'npo', *small)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'no SFT: ' in res.stdout + res.stderr and 'SFT: 4' not in res.stdout + res.stderr
    assert json.loads((tmp_path / 'own' / 'run.json').read_text())['config']['sft_epochs'] is None
