"""`d2o-edu` refuses bad arguments at once, with one line and exit status 2, before any measuring or training
(in-process: `main(argv)`, fast tier)."""
import pytest
from pathlib import Path
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


ARGVS = [['run'], ['run', '--method', 'npo', '--steps', '7', '--lr', '2e-4', '--no-lora', '--out', 'x'],
         ['run', '--lora', '--share-prompt', '--mixed-precision', 'bf16', '--sft-epochs', '0.5', '--judge', 'none'],
         ['study', '--methods', 'ga', 'npo', '--seeds', '3', '4', '--ablations'], ['study2', '--cells', 'a', 'b', '--quick'],
         ['bench', '--reps', '2', '--quick'], ['student', '--out', 'o'], ['grade', 'folder', '--json', 'g.json']]


def test_the_fast_parser_is_the_parser():
    "Rebuilt from its spec (JSON, the standard library alone), the parser prints the same help and parses to the same values."
    import argparse, json
    from d2o_edu.cli import parser_spec, parser_from_spec
    live = build_parser()
    fast = parser_from_spec(json.loads(json.dumps(parser_spec(live))))
    assert fast.format_help() == live.format_help()
    subs = lambda p: next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert list(subs(fast)) == list(subs(live)) == ['run', 'bench', 'study', 'study2', 'student', 'grade']
    for name, p in subs(live).items(): assert subs(fast)[name].format_help() == p.format_help(), name
    for argv in ARGVS: assert vars(fast.parse_args(argv)) == vars(live.parse_args(argv)), argv


WARM = """
import contextlib, io, sys, time
from d2o_edu.cli import main
t, codes = time.perf_counter(), []
for argv in (['run', '--method', 'rlhf'], ['run', '--help'], ['bench', '--nope']):
    with contextlib.redirect_stdout(io.StringIO()):           # the help text (its equality: the test above)
        try: main(argv)
        except SystemExit as e: codes.append(f'{argv[-1]} {e.code}')
print(*codes, sep='\\n')
print('torch' in sys.modules, 'transformers' in sys.modules, f'{time.perf_counter() - t:.3f}')
"""


def test_arguments_are_parsed_before_torch_is_imported(tmp_path):
    """With the spec of this code cached (the first call writes it), `--help` and argument errors need no torch; a
    corrupt cache file is rebuilt, and a changed module is a new cache file."""
    import os, shutil, subprocess, sys
    env = {**os.environ, 'D2O_CACHE': str(tmp_path / 'cache')}
    run = lambda code, cwd=None: subprocess.run([sys.executable, '-c', code], env=env, cwd=cwd, capture_output=True, text=True)
    first = run(WARM)
    assert first.stdout.splitlines()[:3] == ['rlhf 2', '--help 0', '--nope 2'], first.stdout + first.stderr
    assert first.stdout.splitlines()[3].startswith('True')            # no cache yet: built from the configs
    [spec] = (tmp_path / 'cache' / 'cli').glob('*.json')
    second = run(WARM)
    assert second.stdout.splitlines()[3].startswith('False False'), second.stdout + second.stderr
    assert "invalid choice: 'rlhf'" in second.stderr and 'unrecognized arguments: --nope' in second.stderr
    print('first call', first.stdout.split()[-1], 's; cached', second.stdout.split()[-1], 's')
    spec.write_text('{not json')                                     # a corrupt cache: built again, rewritten
    assert run(WARM).stdout.splitlines()[3].startswith('True') and spec.read_text().startswith('{"prog"')
    import d2o_edu
    copy = tmp_path / 'pkg' / 'd2o_edu'                              # the package with one help text changed
    shutil.copytree(Path(d2o_edu.__file__).parent, copy, ignore=shutil.ignore_patterns('__pycache__'))
    path_of = "from d2o_edu.cli import _spec_path; print(_spec_path().name)"
    before = run(path_of, cwd=copy.parent).stdout
    (copy / 'training.py').write_text((copy / 'training.py').read_text().replace('optimizer steps of the alignment stage', 'steps'))
    after = run(path_of, cwd=copy.parent).stdout
    assert before.strip() == spec.name and after.strip() != before.strip()
