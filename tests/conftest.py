"""Test-suite wide settings: offline Hub, test-mode sizes, quiet progress bars; and the two tiers.

`pytest` runs the fast tier; `pytest --slow` runs everything (what CI runs): tests marked `slow` (end-to-end `d2o-edu`
subprocess runs, torchrun pairs, every notebook, the bench smoke test) are otherwise skipped, with a reason naming the flag."""
import os
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ['IN_TEST'] = '1'
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
os.environ.setdefault('TQDM_DISABLE', '1')


def pytest_addoption(parser):
    parser.addoption('--slow', action='store_true', default=False,
                     help='also run the slow tier (tests marked slow): everything, as CI does')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--slow'): return
    skip = pytest.mark.skip(reason='slow tier: run with `pytest --slow`')
    for item in items:
        if item.get_closest_marker('slow'): item.add_marker(skip)


def _torchrun(script, n, port, *args):
    "Run `script` on `n` CPU processes (torchrun, gloo) with a clean distributed environment; a non-zero exit fails the test."
    import subprocess, sys
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ACCELERATE_', 'LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'MASTER_'))}
    env.update(ACCELERATE_USE_CPU='true', HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(n), '--master_port', str(port), str(script),
           *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture
def torchrun():
    "`torchrun(script, n, port, *args)`: a worker script on n CPU processes."
    return _torchrun


def _one_and_two_processes(tmp_path, worker, rows, port, *args):
    "Train `worker` on the same global batch of 4 rows as 1 process × 4 and 2 processes × 2; the two saved weight dicts."
    import json, torch
    (tmp_path / 'rows.json').write_text(json.dumps(rows))
    (tmp_path / 'worker.py').write_text(worker)
    finals = []
    for n in (1, 2):
        out = tmp_path / f'p{n}' / 'weights.pt'
        out.parent.mkdir()
        _torchrun(tmp_path / 'worker.py', n, port + n, tmp_path / 'rows.json', out, 4 // n, *args)
        finals.append(torch.load(out))
    return finals


@pytest.fixture
def one_and_two_processes():
    "`one_and_two_processes(tmp_path, worker_source, rows, port, *args)`: [weights on 1 process, weights on 2]."
    return _one_and_two_processes
