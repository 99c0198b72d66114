"""Nothing stale, nothing lost, through the real command: a fresh run clears what it rebuilds, --resume refuses a
folder that holds another run, and a run killed with SIGKILL resumes to bit-identical weights, log and metrics."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest

SMALL = ['--sft-epochs', '0.05', '--n-train', '16', '--n-eval', '4', '--K', '2', '--max-new-tokens', '10',
         '--batch-size', '4', '--seed', '0']
CMD = [shutil.which('d2o-edu') or sys.executable, *([] if shutil.which('d2o-edu') else
       ['-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())'])]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TQDM_DISABLE': '1'}


def run(*args, check=True):
    res = subprocess.run(CMD + ['run', *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check: assert res.returncode == 0, res.stderr[-3000:]
    return res


def log_of(out): return [json.loads(l) for l in (Path(out) / 'train_log.jsonl').read_text().splitlines()]
def metrics_of(out): return json.loads((Path(out) / 'metrics.json').read_text())


def weights_of(folder):
    from safetensors.torch import load_file
    return load_file(str(Path(folder) / 'model.safetensors'))


@pytest.mark.slow
def test_fresh_run_clears_stale_stages_and_resume_continues_it(tmp_path):
    out, clean = tmp_path / 'shared', tmp_path / 'clean'
    run('--out', str(out), '--steps', '6', '--checkpoint-every', '2', *SMALL)
    run('--out', str(out), '--steps', '3', '--checkpoint-every', '0', *SMALL)     # a fresh, shorter run in the same folder
    assert sorted(p.name for p in (out / 'checkpoints').iterdir()) == ['step-000003']
    run('--out', str(out), '--steps', '3', '--checkpoint-every', '0', '--resume', *SMALL)
    run('--out', str(clean), '--steps', '3', '--checkpoint-every', '0', *SMALL)
    assert [r['step'] for r in log_of(out)] == [1, 2, 3]
    assert metrics_of(out)['aligned'] == metrics_of(clean)['aligned']      # the 3-step run, not the stale 6-step one
    record = json.loads((out / 'run.json').read_text())
    assert record['config']['steps'] == 3 and {'data', 'model'} <= set(record['inputs']) and record['versions']['torch']


@pytest.mark.slow
def test_resume_refuses_changed_inputs_and_settings(tmp_path):
    data = tmp_path / 'mine.jsonl'
    src = Path(__file__).parent / 'fixtures' / 'own_negatives.jsonl'
    data.write_text(src.read_text())
    out = tmp_path / 'run'
    args = ['--out', str(out), '--dataset', str(data), '--steps', '2', '--checkpoint-every', '0',
            *[a if a != '16' else '4' for a in SMALL]]
    run(*args)
    data.write_text(src.read_text().replace('dimwit', 'fool'))               # the user edits their negatives
    res = run(*args, '--resume', check=False)
    assert res.returncode == 2 and 'data input changed' in res.stderr and 'drop --resume' in res.stderr, res.stderr[-2000:]
    data.write_text(src.read_text())
    res = run(*[a if a != '2' else '3' for a in args], '--resume', check=False)   # --steps 3 is another run
    assert res.returncode == 2 and "steps 2 -> 3" in res.stderr, res.stderr[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigkill_during_training_then_resume_is_bit_identical(tmp_path):
    steps = ['--steps', '40', '--checkpoint-every', '5']
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    run('--out', str(straight), *steps, *SMALL)
    proc = subprocess.Popen(CMD + ['run', '--out', str(killed), *steps, *SMALL], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, t0 = killed / 'train_log.jsonl', time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 12: break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL); proc.wait()
    lines_at_kill = len(log.read_text().splitlines())
    assert proc.returncode == -signal.SIGKILL and lines_at_kill < 40, (proc.returncode, lines_at_kill)
    assert not (killed / 'metrics.json').exists()
    run('--out', str(killed), *steps, '--resume', *SMALL)
    a, b = weights_of(straight / 'checkpoints' / 'step-000040'), weights_of(killed / 'checkpoints' / 'step-000040')
    assert all((a[k] == b[k]).all() for k in a)                                # bit for bit
    assert [r['loss'] for r in log_of(straight)] == [r['loss'] for r in log_of(killed)]
    assert metrics_of(straight)['aligned'] == metrics_of(killed)['aligned']
    print(f'killed after {lines_at_kill} logged steps; resumed to 40: identical weights, log and metrics')


@pytest.mark.slow
def test_corrupted_checkpoint_is_named(tmp_path):
    out = tmp_path / 'run'
    run('--out', str(out), '--steps', '4', '--checkpoint-every', '2', *SMALL)
    shutil.rmtree(out / 'checkpoints' / 'step-000004')
    (out / 'checkpoints' / 'step-000002' / 'trainer_state.pt').write_bytes(b'garbage')
    res = run('--out', str(out), '--steps', '4', '--checkpoint-every', '2', '--resume', *SMALL, check=False)
    assert res.returncode == 2 and 'step-000002/trainer_state.pt cannot be read' in res.stderr, res.stderr[-2000:]
    errors = [l for l in res.stderr.splitlines() if not l.startswith('[d2o-edu]')]   # progress lines aside: one error line
    assert len(errors) == 1 and errors[0].startswith('d2o-edu: error:') and 'Traceback' not in res.stderr


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    out, steps = tmp_path / 'run', ['--steps', '200', '--checkpoint-every', '0']   # long enough never to finish first
    # a shell's background jobs inherit SIGINT as *ignored*, and Python then installs no KeyboardInterrupt handler:
    # give the child the default disposition, as a terminal would
    proc = subprocess.Popen(CMD + ['run', '--out', str(out), *steps, *SMALL], env=ENV, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log, t0 = out / 'train_log.jsonl', time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 8: break
        time.sleep(0.02)
    assert proc.poll() is None, 'the run ended before it could be interrupted'
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = len(log.read_text().splitlines())
    assert proc.returncode == 130 and 'rerun the same command with --resume' in err and 'Traceback' not in err, err[-2000:]
    assert (out / 'checkpoints' / f'step-{done:06d}').is_dir() and done < 200
    run('--out', str(out), *steps, '--resume', *SMALL)
    assert [r['step'] for r in log_of(out)] == list(range(1, 201))


def test_checkpoint_of_another_model_is_named(tmp_path):
    import torch
    from d2o_edu.models import build_tiny_gpt2, build_tiny_pythia, train_tokenizer
    from d2o_edu.training import save_checkpoint, load_weights
    tok = train_tokenizer(['a b c'] * 4, vocab_size=260)
    gpt2 = build_tiny_gpt2(tok, n_layer=1, n_embd=16, n_head=2)
    opt = torch.optim.AdamW(gpt2.parameters())
    ckpt = save_checkpoint(tmp_path / 'step-000001', gpt2, tok, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 1)
    with pytest.raises(ValueError, match='model.safetensors does not match the model'):
        load_weights(build_tiny_pythia(tok, n_layer=1, hidden_size=16, n_head=2), ckpt)


def _file_size_limit(limit):
    "A child process whose files cannot grow past `limit` bytes: a write beyond fails as on a full disk (EFBIG)."
    import resource
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # fail the write (errno 27) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize('limit, where', [(200_000, '.sft.tmp'), (6_000_000, 'checkpoints/step-000001/trainer_state.pt')])
def test_a_write_that_fails_midway_is_one_line_naming_the_file(tmp_path, limit, where):
    """The tiny model's weights are 4 MB and its optimizer state 8 MB: at 200 kB the SFT model's save fails (safetensors'
    own error type), at 6 MB the first checkpoint's (torch's "unexpected pos"). Either way one line names the file and
    the space left, no half-written folder stays, and --resume with room to write finishes the run."""
    out = tmp_path / 'run'
    args = ['--out', str(out), '--steps', '2', '--checkpoint-every', '1', *SMALL]
    res = subprocess.run(CMD + ['run', *args], capture_output=True, text=True, env=ENV, timeout=600,
                         preexec_fn=_file_size_limit(limit))
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 1 and last.startswith('d2o-edu: error: OSError: cannot write '), res.stderr[-2000:]
    assert where in last and 'MB free on its disk' in last and ('File too large' in last or 'unexpected pos' in last), last
    assert not list(out.rglob('.*.tmp'))                            # the temporary folder of the failed save is gone
    assert not (out / 'checkpoints').exists() or not any((out / 'checkpoints').iterdir())
    run(*args, '--resume')
    assert [r['step'] for r in log_of(out)] == [1, 2] and (out / 'metrics.json').exists()


def _interrupt_after_update(n, times=1):
    "A Ctrl-C (SIGINT to this process) right after the n-th optimizer update, before the loop has counted that step."
    from torch.optim.optimizer import register_optimizer_step_post_hook
    updates = []
    def hook(optimizer, args, kwargs):
        updates.append(1)
        if len(updates) == n:
            for _ in range(times): os.kill(os.getpid(), signal.SIGINT)
    return register_optimizer_step_post_hook(hook)


@pytest.fixture
def terminal_ctrl_c():
    "SIGINT handled as in a terminal (Python's KeyboardInterrupt): CI's background shell, or an earlier test, may not."
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('times, checkpoint_every, message', [
    (1, 0, 'interrupted after step 3; checkpoint in .*step-000003: rerun'),
    (2, 2, 'interrupted in step 3, which is not saved; the last checkpoint is .*step-000002: rerun')])
def test_ctrl_c_in_the_middle_of_a_step_resumes_the_uninterrupted_run(tmp_path, terminal_ctrl_c, times, checkpoint_every,
                                                                     message):
    """A Ctrl-C that lands after the optimizer's update but before the step is counted (a review hit it in 1 of 5
    tries; the resumed run then applied that step twice): once, the step finishes and is saved; twice, the run stops
    at once and names the last checkpoint. Either way the resumed run ends with the uninterrupted run's weights."""
    import copy, torch
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model
    from d2o_edu.sampling import AnchorConfig, sample_anchors
    from d2o_edu.training import TrainConfig, train, read_log
    model, tok = load_model('tiny-gpt2')
    rows = sample_anchors(model, tok, load_harm_world('negatives').select(range(8)), AnchorConfig(K=2, max_new_tokens=8),
                          progress=False)
    config = TrainConfig(steps=5, batch_size=4, checkpoint_every=checkpoint_every, lr=1e-3)
    straight = train(copy.deepcopy(model), tok, rows, config, tmp_path / 'straight', progress=False)
    handle = _interrupt_after_update(3, times)
    try:
        with pytest.raises(KeyboardInterrupt, match=message):
            train(copy.deepcopy(model), tok, rows, config, tmp_path / 'cut', progress=False)
    finally: handle.remove()
    resumed = train(copy.deepcopy(model), tok, rows, config, tmp_path / 'cut', resume=True, progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert [r['loss'] for r in read_log(tmp_path / 'cut')] == [r['loss'] for r in read_log(tmp_path / 'straight')]
