"""A corpus of bad inputs, through the command line and the library: each fails at once with one clear line that names
what is wrong (the flag, file, row, field or value) — never a traceback, never after minutes of work."""
import argparse, contextlib, io, json
import pytest
import torch

GOOD = {'prompt': 'How do I keep my basil healthy?', 'rejected': 'Only a dimwit asks. Water it.'}


def cli(argv):
    "Run `d2o-edu` in this process: (exit code, stderr)."
    from d2o_edu.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: main(argv); code = 0
        except SystemExit as e: code = e.code
    return code, err.getvalue()


def lines(rows):
    return ''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in rows)


# (id, extra argv, file content for --dataset or None, expected fragment of the message)
FLAG_CASES = [
    ('unknown method', ['--method', 'rlhf'], None, "invalid choice: 'rlhf'"),
    ('K zero', ['--K', '0'], None, 'K must be an integer >= 1, got 0'),
    ('K not a number', ['--K', 'eight'], None, "invalid int value: 'eight'"),
    ('alpha zero', ['--alpha', '0'], None, 'alpha must be > 0, got 0.0'),
    ('beta negative', ['--beta', '-1'], None, 'beta must be > 0, got -1.0'),
    ('steps zero', ['--steps', '0'], None, 'steps must be an integer >= 1, got 0'),
    ('batch size zero', ['--batch-size', '0'], None, 'batch_size must be an integer >= 1, got 0'),
    ('lr zero', ['--lr', '0'], None, 'lr must be a finite number > 0, got 0.0'),
    ('lr infinite', ['--lr', 'inf'], None, 'lr must be a finite number > 0, got inf'),
    ('sft lr negative', ['--sft-lr=-1e-3'], None, 'sft_lr must be a finite number > 0, got -0.001'),
    ('sft epochs negative', ['--sft-epochs', '-1'], None, 'sft_epochs must be >= 0 (0 = no SFT), got -1.0'),
    ('n_train zero', ['--n-train', '0'], None, 'n_train must be an integer >= 1, got 0'),
    ('n_eval zero', ['--n-eval', '0'], None, 'n_eval must be an integer >= 1, got 0'),
    ('n_sft zero', ['--n-sft', '0'], None, 'n_sft must be an integer >= 1 (or unset: all rows), got 0'),
    ('noise above 1', ['--noise', '2'], None, 'noise must be between 0 and 1, got 2.0'),
    ('max_new_tokens zero', ['--max-new-tokens', '0'], None, 'max_new_tokens must be an integer >= 1, got 0'),
    ('checkpoint_every negative', ['--checkpoint-every', '-5'], None, 'checkpoint_every must be an integer >= 0'),
    ('mixed precision unknown', ['--mixed-precision', 'fp8'], None, "invalid choice: 'fp8'"),
    ('harm labels weight', ['--harm-labels', 'unsafe=2'], None, 'unsafe'),
    ('unknown dataset name', ['--dataset', 'beavertails'], None, "'beavertails'"),
    ('data files that do not exist', ['--dataset', 'pku-saferlhf', '--data-files', '/no/such/pku.jsonl'], None, "data_files '/no/such/pku.jsonl' does not exist"),
    ('data files for the harm world', ['--data-files', 'pku.jsonl'], None, "only 'pku-saferlhf' and 'hh-rlhf' read data_files, not 'harm-world'"),
    ('judge that does not exist', ['--judge', 'no/such-classifier-here'], None, 'no/such-classifier-here'),
    ('harm labels without classifier', ['--harm-labels', 'unsafe', '--judge', 'harm-world'], None, 'harm_labels'),
    ('pair method on negatives-only file', ['--method', 'dpo'], [GOOD] * 3 + [{'prompt': 'Other?', 'rejected': 'x'}], "has no field 'chosen'"),
    ('resample_every zero', ['--resample-every', '0'], None, 'resample_every must be >= 1, got 0'),
    ('seed not a number', ['--seed', 'x'], None, "invalid int value: 'x'"),
    ('anchors mode unknown', ['--anchors', 'sometimes'], None, "invalid choice: 'sometimes'"),
    ('attention kernel unknown', ['--attn-implementation', 'flash'], None, "invalid choice: 'flash'"),
    ('model that does not exist', ['--model', 'no-such-org/no-such-model'], None, "could not load model 'no-such-org/no-such-model'"),
    ('optimizer unknown', ['--optimizer', 'lion'], None, "invalid choice: 'lion'"),
    ('simpo beta zero', ['--simpo-beta', '0'], None, 'simpo_beta must be > 0, got 0.0'),
    ('simpo gamma not finite', ['--simpo-gamma', 'nan'], None, 'simpo_gamma must be a finite number, got nan'),
    ('warmup over the run', ['--warmup', '2'], None, 'warmup must be a share of the steps, 0 <= warmup < 1, got 2.0'),
    ('gradient clip negative', ['--max-grad-norm', '-1'], None, 'max_grad_norm must be a finite number > 0, got -1.0'),
    ('seed negative', ['--seed', '-1'], None, 'seed must be an integer 0 <= seed < 2**32, got -1'),
    ('harm labels without any judge', ['--harm-labels', 'unsafe', '--judge', 'none'], None, "only applies to a classifier judge, not to judge 'none'"),
]
DATA_CASES = [
    ('missing field', [GOOD, {'prompt': 'Hi there'}], "row 1 has no field 'rejected'"),
    ('empty response', [GOOD, {'prompt': 'Hi there', 'rejected': '   '}], "row 1, field 'rejected' is empty"),
    ('number instead of text', [GOOD, {'prompt': 'Hi there', 'rejected': 42}], "row 1, field 'rejected' must be a string"),
    ('not JSON', [GOOD, '{"prompt": "Hi", rejected: oops}'], 'line 2: not valid JSON'),
    ('JSON array instead of object', [GOOD, '["Hi", "oops"]'], 'line 2: expected a JSON object'),
    ('empty file', [], 'no rows'),
    ('too few rows for evaluation', [GOOD, GOOD], 'no prompt left for evaluation'),
]


@pytest.mark.parametrize('name, argv, rows, message', FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flag(name, argv, rows, message, tmp_path):
    extra = []
    if rows is not None:
        (tmp_path / 'data.jsonl').write_text(lines(rows)); extra = ['--dataset', str(tmp_path / 'data.jsonl'), '--n-train', '2']
    code, err = cli(['run', '--out', str(tmp_path / 'out'), *extra, *argv])
    assert code not in (0, None) and message in err, err
    assert err.startswith('d2o-edu: error:') and len(err.strip().splitlines()) == 1, err     # one line, no traceback
    assert not (tmp_path / 'out' / 'sft').exists()                                 # no work was done


@pytest.mark.parametrize('name, rows, message', DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_file(name, rows, message, tmp_path):
    path = tmp_path / 'negatives.jsonl'
    path.write_text(lines(rows))
    code, err = cli(['run', '--out', str(tmp_path / 'out'), '--dataset', str(path), '--n-train', '1'])
    assert code == 2 and err.startswith('d2o-edu: error:') and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'out' / 'sft').exists(), err


def test_data_file_that_is_not_utf8(tmp_path):
    path = tmp_path / 'latin1.jsonl'
    path.write_bytes(json.dumps(GOOD).encode() + b'\n' + '{"prompt": "Caf\u00e9?", "rejected": "x"}'.encode('latin-1') + b'\n')
    code, err = cli(['run', '--out', str(tmp_path / 'out'), '--dataset', str(path)])
    assert code == 2 and str(path) in err and 'UTF-8' in err and 'line 2' in err, err


def test_missing_data_file(tmp_path):
    code, err = cli(['run', '--out', str(tmp_path / 'out'), '--dataset', str(tmp_path / 'nope.jsonl')])
    assert code == 2 and 'nope.jsonl' in err and 'no such file' in err, err


def test_out_is_a_file(tmp_path):
    (tmp_path / 'taken').write_text('not a folder')
    code, err = cli(['run', '--out', str(tmp_path / 'taken')])
    assert code == 2 and 'is a file, not a folder' in err and 'Traceback' not in err, err


def test_out_under_a_file(tmp_path):
    (tmp_path / 'taken').write_text('not a folder')
    code, err = cli(['run', '--out', str(tmp_path / 'taken' / 'run')])
    assert code == 2 and 'taken is a file, so no folder can be made under it' in err and 'Traceback' not in err, err


@pytest.mark.parametrize('seeds', [['-1'], ['3'], ['1', '1']])
def test_study_seeds_are_checked_before_any_work(tmp_path, seeds):
    code, err = cli(['study', '--quick', '--out', str(tmp_path / 'st'), '--seeds', *seeds])
    assert code == 2 and 'seeds must be at least two distinct integers' in err, err
    assert not (tmp_path / 'st' / 'sft').exists()                                  # before the SFT stage


@pytest.mark.parametrize('command, results', [('study', 'study.json'), ('study2', 'study2.json')])
def test_only_reads_the_courses_results_from_any_folder(tmp_path, monkeypatch, command, results):
    "`--only` without `--from` reads the committed results file, whatever the working folder (before: ./data/results/…)."
    monkeypatch.chdir(tmp_path)
    code, err = cli([command, '--only', 'no-such-job', '--out', str(tmp_path / 'st')])
    assert code == 2 and f"{results} has no run 'no-such-job'" in err and 'not found: pass' not in err, err


def test_resume_of_a_folder_without_run_json(tmp_path):
    (tmp_path / 'old' / 'checkpoints').mkdir(parents=True)
    code, err = cli(['run', '--out', str(tmp_path / 'old'), '--resume'])
    assert code == 2 and 'has no run.json' in err, err


# the library: the same rule, a ValueError that names the value
LIBRARY_CASES = [
    ('d2o anchors not 2-d', lambda: __import__('d2o_edu.losses', fromlist=['x']).d2o_loss(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(4)),
     'anchor log-probs must be [B, K]'),
    ('dpo shapes differ', lambda: __import__('d2o_edu.losses', fromlist=['x']).dpo_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3)),
     'policy_rejected_logps has shape (2,)'),
    ('train config method', lambda: __import__('d2o_edu.training', fromlist=['x']).TrainConfig(method='sft'), "unknown method 'sft'"),
    ('anchor config K', lambda: __import__('d2o_edu.sampling', fromlist=['x']).AnchorConfig(K=0), 'K must be an integer >= 1'),
    ('uneven shards', lambda: __import__('d2o_edu.training', fromlist=['x']).shard(list(range(6)), 0, 4), 'cannot be split into 4 equal shards'),
    ('collate mismatch', lambda: __import__('d2o_edu.batches', fromlist=['x']).collate([{'input_ids': [1, 2], 'labels': [1]}], 0), 'example 0 has 2 input_ids but 1 labels'),
    ('sampled response empty', lambda: __import__('d2o_edu.models', fromlist=['x']).example_from_ids([1, 2], []), 'at least one token'),
    ('harm label weight', lambda: __import__('d2o_edu.judges', fromlist=['x']).parse_harm_labels('unsafe=7'), 'unsafe'),
    ('mixed precision', lambda: __import__('d2o_edu.core', fromlist=['x']).resolve_mixed_precision('fp8'), "mixed_precision='fp8'"),
    ('pipeline noise', lambda: __import__('d2o_edu.pipeline', fromlist=['x']).PipelineConfig(noise=-0.1), 'noise must be between 0 and 1, got -0.1'),
]


@pytest.mark.parametrize('name, call, message', LIBRARY_CASES, ids=[c[0] for c in LIBRARY_CASES])
def test_library_bad_input(name, call, message):
    with pytest.raises(ValueError) as e: call()
    assert message in str(e.value), str(e.value)


NO_CASE = {'--out': 'a test of its own: test_out_is_a_file'}   # option: why FLAG_CASES has no bad value for it


def test_every_option_of_run_has_a_bad_value_case():
    "Each option of `d2o-edu run` that takes a value is given a bad one in FLAG_CASES: a new option without a case fails here."
    from d2o_edu.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    takes_value = {a.option_strings[-1] for a in sub.choices['run']._actions if a.option_strings and a.nargs != 0}
    assert {'--method', '--K', '--lr', '--model', '--dataset'} <= takes_value     # the parser was read
    covered = {arg.split('=')[0] for _, argv, _, _ in FLAG_CASES for arg in argv if arg.startswith('--')}
    missing = sorted(takes_value - covered - set(NO_CASE))
    assert not missing, f'options of `d2o-edu run` without a bad-value case in FLAG_CASES (or a reason in NO_CASE): {missing}'
