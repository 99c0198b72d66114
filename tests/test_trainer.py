"""`D2OTrainer` (chapter 14) against independent references: the readable loop of chapter 08 (losses and weights, step
for step), one larger batch (gradient accumulation), one process (two CPU processes, gloo), and the frozen base model
(LoRA). Tiny GPT-2, offline, a few seconds each."""
import json, math, os
import pytest
import torch

STEPS, LR = 4, 1e-3


@pytest.fixture(scope='module')
def tiny():
    from d2o_edu.data import load_harm_world, noisy_pairs
    from d2o_edu.models import load_model
    from d2o_edu.sampling import sample_anchors, score_pairs, AnchorConfig
    torch.manual_seed(0)
    model, tok = load_model('tiny-gpt2')
    start = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [dict(r) for r in sample_anchors(model, tok, load_harm_world('negatives').select(range(16)),
                                             AnchorConfig(K=2, max_new_tokens=8), progress=False)]
    pairs = [dict(r) for r in score_pairs(model, tok, noisy_pairs(0.34).select(range(16)), progress=False)]
    return model, tok, start, rows, pairs


def _args(out, **kw):
    from d2o_edu.trainer import D2OConfig
    base = dict(output_dir=str(out), per_device_train_batch_size=4, max_steps=STEPS, learning_rate=LR, logging_steps=1,
                save_strategy='no', anchors='precomputed', seed=0, use_cpu=True, disable_tqdm=True)
    return D2OConfig(**{**base, **kw})


def _weights(model): return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize('method', ['d2o', 'dpo', 'kto_negative'])
def test_same_losses_and_weights_as_the_readable_loop(tiny, tmp_path, method):
    "Same rows, batch order, optimizer and learning-rate schedule: the Trainer and chapter 08's loop train the same model."
    from d2o_edu.sft import lr_at
    from d2o_edu.trainer import D2OTrainer
    from d2o_edu.training import TrainConfig, train, read_log
    model, tok, start, rows, pairs = tiny
    data = pairs if method == 'dpo' else rows
    model.load_state_dict(start)
    train(model, tok, data, TrainConfig(method=method, steps=STEPS, batch_size=4, lr=LR, checkpoint_every=0),
          out_dir=tmp_path / 'loop', progress=False)
    loop_losses, loop_weights = [r['loss'] for r in read_log(tmp_path / 'loop')], _weights(model)
    model.load_state_dict(start)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, STEPS, 1.0, 0.05))   # the loop's schedule
    trainer = D2OTrainer(model, _args(tmp_path / 'hf', method=method), train_dataset=data, processing_class=tok,
                         optimizers=(opt, sched))
    trainer.train()
    hf_losses = [r['loss'] for r in trainer.state.log_history if 'loss' in r]
    assert len(hf_losses) == STEPS
    for a, b in zip(loop_losses, hf_losses): assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7), (loop_losses, hf_losses)
    assert loop_losses[-1] != loop_losses[0]                        # training moved
    for k, v in _weights(model).items(): torch.testing.assert_close(v, loop_weights[k], rtol=0, atol=1e-6)
    logged = trainer.state.log_history[0]
    assert {'margin', 'grad_weight'} <= set(logged) if method == 'd2o' else 'logps/rejected' in logged


def test_gradient_accumulation_equals_the_larger_batch(tiny, tmp_path):
    "2 rows × 4 accumulation steps and 8 rows × 1 step: the same rows per optimizer step, the same gradients."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    finals = []
    for per_device, accumulate in ((8, 1), (2, 4)):
        model.load_state_dict(start)
        D2OTrainer(model, _args(tmp_path / f'ga{accumulate}', per_device_train_batch_size=per_device,
                                gradient_accumulation_steps=accumulate), train_dataset=rows, processing_class=tok).train()
        finals.append(_weights(model))
    model.load_state_dict(start)                                # a control: other rows per step (another seed)
    D2OTrainer(model, _args(tmp_path / 'other', per_device_train_batch_size=8, seed=1), train_dataset=rows, processing_class=tok).train()
    other = _weights(model)
    gap = lambda a, b: max((a[k] - b[k]).abs().max().item() for k in a)
    assert gap(finals[0], start) > 1e-4 and gap(other, finals[0]) > 1e-3
    # equal up to float32 summation order (a mean of 4 means vs one mean), which Adam's normalisation can enlarge
    for k in finals[0]: torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=2e-5)


def test_lora_trains_adapters_and_keeps_the_base_as_reference(tiny, tmp_path):
    "With a peft_config: only adapters change, the loss falls, and the reference log-probs are the base model's."
    from peft import LoraConfig
    from d2o_edu.models import load_model, response_logps
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    model.load_state_dict(start)
    base = [{k: v for k, v in r.items() if k in ('prompt', 'rejected')} for r in rows]   # the trainer samples and scores
    trainer = D2OTrainer(model, _args(tmp_path / 'lora', anchors='sampled', K=2, max_new_tokens=8, max_steps=8,
                                      learning_rate=2e-2),
                         train_dataset=base, processing_class=tok,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=['c_attn'], task_type='CAUSAL_LM'))
    prepared = trainer.train_dataset.rows
    fresh, _ = load_model('tiny-gpt2')                        # an independent copy of the starting weights
    fresh.load_state_dict(start)
    expected = response_logps(fresh, tok, [r['prompt'] for r in prepared], [r['rejected'] for r in prepared])
    torch.testing.assert_close(torch.tensor([r['ref_rejected_logps'] for r in prepared]), expected, rtol=0, atol=1e-4)
    assert len(prepared[0]['anchor_ids']) == 2
    trainer.train()
    losses = [r['loss'] for r in trainer.state.log_history if 'loss' in r]
    assert losses[-1] < losses[0]
    merged = {k.replace('base_model.model.', '').replace('base_layer.', ''): v for k, v in trainer.model.state_dict().items()
              if 'lora_' not in k}
    for k, v in start.items(): assert torch.equal(merged[k], v), k
    assert any(p.requires_grad for n, p in trainer.model.named_parameters() if 'lora_' in n)


WORKER = """
import json, os, sys, torch
from pathlib import Path
from accelerate import PartialState
from d2o_edu.models import load_model
from d2o_edu.trainer import D2OTrainer, D2OConfig
rows_file, out_file, per_device, steps, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(1)
model, tok = load_model('tiny-gpt2')
args = D2OConfig(output_dir=str(Path(out_file).parent / 'hf'), per_device_train_batch_size=per_device, max_steps=steps,
                 learning_rate=lr, logging_steps=1, save_strategy='no', anchors='precomputed', seed=0, use_cpu=True,
                 disable_tqdm=True)
trainer = D2OTrainer(model, args, train_dataset=json.loads(Path(rows_file).read_text()), processing_class=tok)
assert trainer.accelerator.num_processes == trainer.args.world_size == int(os.environ['WORLD_SIZE'])
trainer.train()
if PartialState().is_main_process:
    torch.save({k: v.detach().cpu() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}, out_file)
"""


@pytest.mark.slow
def test_two_cpu_processes_train_what_one_does(tiny, tmp_path):
    "The same global batch (4 rows) as 1 process × 4 or 2 processes × 2 (torchrun, gloo): the same model."
    import subprocess, sys
    _, _, _, rows, _ = tiny
    (tmp_path / 'rows.json').write_text(json.dumps(rows))
    (tmp_path / 'worker.py').write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ACCELERATE_', 'LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'MASTER_'))}
    env.update(ACCELERATE_USE_CPU='true', HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false')
    finals = []
    for n in (1, 2):
        out = tmp_path / f'p{n}' / 'weights.pt'
        out.parent.mkdir()
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(n), '--master_port', str(29610 + n),
               str(tmp_path / 'worker.py'), str(tmp_path / 'rows.json'), str(out), str(4 // n), str(STEPS), str(LR)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        finals.append(torch.load(out))
    for k in finals[0]: torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=2e-5)


def test_bad_input_names_row_field_and_value(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    bad = [dict(r) for r in rows]; bad[3]['rejected'] = ''
    with pytest.raises(ValueError, match="row 3: field 'rejected' must be a non-empty string, got ''"):
        D2OTrainer(model, _args(tmp_path / 'bad'), train_dataset=bad, processing_class=tok)
    with pytest.raises(ValueError, match='anchors=.precomputed. needs the columns'):
        D2OTrainer(model, _args(tmp_path / 'bad2'), train_dataset=[{'prompt': 'hi', 'rejected': 'no'}], processing_class=tok)
    with pytest.raises(ValueError, match='unknown method'): _args(tmp_path / 'bad3', method='orpo')
