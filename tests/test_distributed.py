"""N processes train the same model as one: the same run through `d2o-edu run` in 1 and in 2 CPU processes (torchrun,
gloo), from the same starting model, compared on the learning-rate column, the logged losses, the log's lines and the
final weights: offline D²O and KTO, and online D²O, whose anchors every process re-samples during training."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow        # every test here runs torchrun pairs (tens of seconds each): `pytest --slow`

TRAIN = ['--sft-epochs', '0', '--n-train', '32', '--n-eval', '4', '--K', '2', '--max-new-tokens', '10',
         '--steps', '12', '--batch-size', '8', '--lr', '1e-3', '--checkpoint-every', '0']


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ACCELERATE_', 'LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'MASTER_'))}
    env.update(ACCELERATE_USE_CPU='true', HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    return env


def _run(nproc, out, start, method, extra=()):
    cli = [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), '--master_port', str(29500 + nproc)]
    if nproc > 1:   # torchrun runs a script file: the console script's module entry point
        cmd = torchrun + [shutil.which('d2o-edu')]
    else: cmd = cli
    res = subprocess.run(cmd + ['run', '--out', str(out), '--model', str(start), '--method', method] + TRAIN + list(extra),
                         capture_output=True, text=True, env=_env(), timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@pytest.fixture(scope='module')
def start_model(tmp_path_factory):
    "A briefly fine-tuned tiny GPT-2 saved to a folder: both runs start from exactly these weights."
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model, save_model
    from d2o_edu.sft import sft, SFTConfig
    model, tok = load_model('tiny-gpt2')
    sft(model, tok, load_harm_world('sft').select(range(256)), SFTConfig(epochs=1.0), progress=False)
    return save_model(model, tok, tmp_path_factory.mktemp('start') / 'sft')


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(str(Path(folder) / 'model.safetensors'))


@pytest.mark.skipif(shutil.which('d2o-edu') is None, reason='the d2o-edu console script is not installed')
@pytest.mark.parametrize('method', ['d2o', 'kto_negative'])
def test_two_processes_train_what_one_does(start_model, tmp_path, method):
    one, two = tmp_path / 'one', tmp_path / 'two'
    _run(1, one, start_model, method)
    _run(2, two, start_model, method)
    log1 = [json.loads(l) for l in (one / 'train_log.jsonl').read_text().splitlines()]
    log2 = [json.loads(l) for l in (two / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log2] == list(range(1, 13))                 # one line per step: only rank 0 writes
    assert [r['lr'] for r in log1] == [r['lr'] for r in log2]              # the schedule runs its whole length in both
    for a, b in zip(log1, log2):
        assert abs(a['loss'] - b['loss']) <= 1e-3 * abs(a['loss']), (a['step'], a['loss'], b['loss'])
    w1, w2 = _weights(one / 'checkpoints' / 'step-000012'), _weights(two / 'checkpoints' / 'step-000012')
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f'{method}: max |w1 - w2| = {diff:.2e}, max loss rel diff = '
          f"{max(abs(a['loss'] - b['loss']) / abs(a['loss']) for a, b in zip(log1, log2)):.2e}")
    assert diff < 1e-4
    m1, m2 = json.loads((one / 'metrics.json').read_text()), json.loads((two / 'metrics.json').read_text())
    assert (m1['processes'], m2['processes']) == (1, 2)
    assert json.loads((two / 'train_config.json').read_text())['processes'] == 2
    assert m1['sft'] == m2['sft']                                           # same anchors/eval: sampled once, on rank 0
    assert sorted(p.name for p in (two / 'checkpoints').iterdir()) == ['step-000012']


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('d2o-edu') is None, reason='the d2o-edu console script is not installed')
def test_two_processes_train_what_one_does_with_online_anchors(start_model, tmp_path):
    """Online D²O re-samples anchors inside the loop (every 4 steps here, 3 times): each process draws the same ones from
    the same weights and seed. (It used to crash under torchrun: the DDP-wrapped model has no `.config`.)"""
    online = ['--anchors', 'online', '--resample-every', '4']
    one, two = tmp_path / 'one', tmp_path / 'two'
    _run(1, one, start_model, 'd2o', online)
    _run(2, two, start_model, 'd2o', online)
    log1 = [json.loads(l) for l in (one / 'train_log.jsonl').read_text().splitlines()]
    log2 = [json.loads(l) for l in (two / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log2] == list(range(1, 13))
    assert [r['lr'] for r in log1] == [r['lr'] for r in log2]
    for a, b in zip(log1, log2):
        assert abs(a['loss'] - b['loss']) <= 1e-3 * abs(a['loss']), (a['step'], a['loss'], b['loss'])
    w1, w2 = _weights(one / 'checkpoints' / 'step-000012'), _weights(two / 'checkpoints' / 'step-000012')
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    print(f'online d2o: max |w1 - w2| = {diff:.2e}')
    assert diff < 1e-4
    assert json.loads((two / 'train_config.json').read_text())['anchors'] == 'online'
    assert json.loads((two / 'train_config.json').read_text())['processes'] == 2


@pytest.mark.skipif(shutil.which('d2o-edu') is None, reason='the d2o-edu console script is not installed')
def test_batch_that_cannot_be_split_is_a_clear_error(start_model, tmp_path):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29507',
           shutil.which('d2o-edu'), 'run', '--out', str(tmp_path / 'odd'), '--model', str(start_model)] + TRAIN
    cmd[cmd.index('--batch-size') + 1] = '7'
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert res.returncode != 0 and 'cannot be split into 2 equal shards' in res.stderr, res.stderr[-3000:]
