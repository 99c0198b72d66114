"""`d2o-edu` refuses bad arguments at once, with one line and exit status 2, before any measuring or training
(in-process: `main(argv)`, fast tier)."""
import pytest
from d2o_edu.cli import main, build_parser
from d2o_edu.pipeline import PipelineConfig, run_lock


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith('d2o-edu: error:') and len(err.splitlines()) == 1, (e.value.code, err)
    return err


@pytest.mark.parametrize('argv, expected', [
    (['bench', '--threads', '0'], '--threads must be >= 1, got 0'),
    (['bench', '--threads', '-1'], '--threads must be >= 1, got -1'),
    (['bench', '--reps', '0'], '--reps must be >= 1'),
    (['run', '--method', 'npo', '--anchors', 'online'], "method 'npo' takes the defaults"),
    (['run', '--optimizer', 'lion'], "invalid choice: 'lion'"),
    (['run', '--warmup', 'x'], "invalid float value: 'x'"),
])
def test_bad_arguments_are_refused_in_one_line(argv, expected, capsys):
    assert expected in refused(argv, capsys)


def test_outputs_are_checked_before_work(tmp_path, capsys):
    a_file = tmp_path / 'a_file'; a_file.write_text('x')
    assert 'is a file, not a folder' in refused(['study', '--out', str(a_file)], capsys)
    assert 'is a folder: give a file' in refused(['bench', '--out', str(tmp_path)], capsys)


def test_a_busy_run_folder_is_refused(tmp_path, capsys):
    "A second run into a folder another run holds stops before writing anything; once released, the folder is free."
    busy = tmp_path / 'busy'
    with run_lock(busy):
        err = refused(['run', '--out', str(busy), '--steps', '1', '--n-train', '4', '--n-eval', '1'], capsys)
        assert 'is in use by another run (process' in err and not (busy / 'run.json').exists()
    with run_lock(busy): pass


def test_every_setting_is_a_documented_flag():
    run = build_parser()._subparsers._group_actions[0].choices['run']
    flags = {a.dest: a for a in run._actions if a.dest not in ('help', 'out', 'resume')}
    assert {'optimizer', 'simpo_beta', 'simpo_gamma', 'warmup', 'max_grad_norm', 'length_normalize'} <= set(flags)
    assert [n for n, a in flags.items() if not a.help] == []
    defaults = PipelineConfig()
    assert {n: a.default for n, a in flags.items()} == {n: getattr(defaults, n) for n in flags}


def test_a_hub_set_from_a_local_copy_in_its_own_schema(tmp_path, capsys):
    """`--dataset pku-saferlhf --data-files FILE` (what the offline error advises) trains on a copy in PKU's schema: the
    negatives are the responses its humans flagged unsafe, counted here from the raw file."""
    import json
    from pathlib import Path
    fixture = Path(__file__).parent / 'fixtures' / 'pku_saferlhf_sample.jsonl'
    raw = [json.loads(line) for line in fixture.read_text().splitlines() if line.strip()]
    unsafe = [(r['prompt'], r[f'response_{j}']) for r in raw for j in (0, 1) if not r[f'is_response_{j}_safe']]
    out = tmp_path / 'pku'
    assert main(['run', '--dataset', 'pku-saferlhf', '--data-files', str(fixture), '--steps', '1', '--n-train', '3',
                 '--n-eval', '2', '--K', '1', '--sft-epochs', '0', '--max-new-tokens', '4', '--batch-size', '1', '--out', str(out)]) == 0
    rows = [json.loads(line) for line in (out / 'anchors.jsonl').read_text().splitlines()]
    assert [(r['prompt'], r['rejected']) for r in rows] == unsafe[:3]
    assert json.loads((out / 'run.json').read_text())['config']['data_files'] == str(fixture)


def test_help_states_each_default_once():
    "A flag whose help already says its default (e.g. --n-sft: 'default: all of it') gets no second '(default: None)'."
    run = build_parser()._subparsers._group_actions[0].choices['run']
    formatter = run._get_formatter()
    shown = {a.dest: formatter._get_help_string(a) % {'default': a.default} for a in run._actions if a.help}
    assert all(h.count('(default') <= 1 for h in shown.values()), {k: h for k, h in shown.items() if h.count('(default') > 1}
    assert '(default: 512)' in shown['n_train'] and '(default: None)' not in shown['n_sft']
