"""`D2OTrainer` (chapter 14) against independent references: the readable loop of chapter 08 (losses and weights, step
for step), one larger batch (gradient accumulation), one process (two CPU processes, gloo), and the frozen base model
(LoRA). Tiny GPT-2, offline, a few seconds each."""
import copy, math
import pytest
import torch

STEPS, LR = 4, 1e-3


@pytest.fixture(scope='module')
def tiny():
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.variants import noisy_pairs
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
    trainer = D2OTrainer(model, args=_args(tmp_path / 'hf', method=method), train_dataset=data, processing_class=tok,
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
        D2OTrainer(model, args=_args(tmp_path / f'ga{accumulate}', per_device_train_batch_size=per_device,
                                gradient_accumulation_steps=accumulate), train_dataset=rows, processing_class=tok).train()
        finals.append(_weights(model))
    model.load_state_dict(start)                                # a control: other rows per step (another seed)
    D2OTrainer(model, args=_args(tmp_path / 'other', per_device_train_batch_size=8, seed=1), train_dataset=rows, processing_class=tok).train()
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
    _, tok, start, rows, _ = tiny
    model, _ = load_model('tiny-gpt2')                        # its own copy: peft injects the adapters into the model
    model.load_state_dict(start)
    base = [{k: v for k, v in r.items() if k in ('prompt', 'rejected')} for r in rows]   # the trainer samples and scores
    trainer = D2OTrainer(model, args=_args(tmp_path / 'lora', anchors='sampled', K=2, max_new_tokens=8, max_steps=8,
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
trainer = D2OTrainer(model, args=args, train_dataset=json.loads(Path(rows_file).read_text()), processing_class=tok)
assert trainer.accelerator.num_processes == trainer.args.world_size == int(os.environ['WORLD_SIZE'])
trainer.train()
if PartialState().is_main_process:
    torch.save({k: v.detach().cpu() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}, out_file)
"""


@pytest.mark.slow
def test_two_cpu_processes_train_what_one_does(tiny, tmp_path, one_and_two_processes):
    "The same global batch (4 rows) as 1 process × 4 or 2 processes × 2 (torchrun, gloo): the same model."
    _, _, _, rows, _ = tiny
    finals = one_and_two_processes(tmp_path, WORKER, rows, 29610, STEPS, LR)
    for k in finals[0]: torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=2e-5)


def test_bad_input_names_row_field_and_value(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    bad = [dict(r) for r in rows]; bad[3]['rejected'] = ''
    with pytest.raises(ValueError, match="row 3: field 'rejected' must be a non-empty string or a list of chat messages, got ''"):
        D2OTrainer(model, args=_args(tmp_path / 'bad'), train_dataset=bad, processing_class=tok)
    with pytest.raises(ValueError, match='anchors=.precomputed. needs the columns'):
        D2OTrainer(model, args=_args(tmp_path / 'bad2'), train_dataset=[{'prompt': 'hi', 'rejected': 'no'}], processing_class=tok)
    with pytest.raises(ValueError, match='unknown method'): _args(tmp_path / 'bad3', method='orpo')


def _only(rows, keep): return [{k: r[k] for k in keep if k in r} for r in rows]


@pytest.mark.parametrize('method,given,max_length', [('d2o', 'none', 8), ('d2o', 'none', 96), ('d2o', 'ids', 8),
                                                     ('dpo', 'none', 8), ('dpo', 'none', 96)])
def test_first_loss_is_log2_at_any_max_length(tiny, tmp_path, method, given, max_length):
    "Policy and reference score the same truncated tokens (rejected, chosen, anchors): at step 0 the loss is log 2."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, pairs = tiny
    model.load_state_dict(start)
    keep = ('prompt', 'chosen', 'rejected') if method == 'dpo' else ('prompt', 'rejected') + (
        ('anchors', 'anchor_ids', 'prompt_ids') if given == 'ids' else ())
    data = _only(pairs if method == 'dpo' else rows, keep)        # no reference log-probs: the trainer computes them
    trainer = D2OTrainer(model, args=_args(tmp_path, method=method, anchors='sampled', K=2, max_new_tokens=8,
                                      max_length=max_length, max_steps=1), train_dataset=data, processing_class=tok)
    assert all(len(s['input_ids']) <= max_length for seqs in trainer.train_dataset.encoded for s in seqs)
    trainer.train()
    assert abs(trainer.state.log_history[0]['loss'] - math.log(2)) < 1e-4, trainer.state.log_history[0]


def test_num_train_epochs_trains_that_many_epochs_in_the_loops_order(tiny, tmp_path):
    "num_train_epochs=2 on 16 rows, a global batch of 4: 8 optimizer steps, epoch 2.0 at the end, the loop's batches."
    from d2o_edu.trainer import D2OTrainer
    from d2o_edu.training import batch_indices
    model, tok, start, rows, _ = tiny
    model.load_state_dict(start)
    data = [{**r, 'i': i} for i, r in enumerate(rows)]
    trainer = D2OTrainer(model, args=_args(tmp_path, max_steps=-1, num_train_epochs=2), train_dataset=data, processing_class=tok)
    seen, compute = [], trainer.compute_loss
    def spy(model, inputs, *a, **kw):
        seen.append(sorted(r['i'] for r in inputs['rows'])); return compute(model, inputs, *a, **kw)
    trainer.compute_loss = spy
    trainer.train()
    expected_steps = 2 * (len(rows) // 4)
    assert trainer.state.global_step == expected_steps
    logs = [r for r in trainer.state.log_history if 'loss' in r]
    assert len(logs) == expected_steps and logs[-1]['epoch'] == 2.0, [r['epoch'] for r in logs]
    assert seen == [sorted(batch_indices(s, len(rows), 4, 0)) for s in range(expected_steps)]


@pytest.mark.parametrize('method', ['d2o', 'dpo'])
def test_evaluate_and_eval_strategy_steps(tiny, tmp_path, method):
    "evaluate() returns eval_loss (log 2 before training) and the objective's metrics, prefixed eval_; eval_strategy='steps' evaluates while training."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, pairs = tiny
    model.load_state_dict(start)
    data = pairs if method == 'dpo' else rows
    trainer = D2OTrainer(model, args=_args(tmp_path, method=method, eval_strategy='steps', eval_steps=2, per_device_eval_batch_size=4),
                         train_dataset=data[:12], eval_dataset=data[12:], processing_class=tok)
    before = trainer.evaluate()
    assert abs(before['eval_loss'] - math.log(2)) < 1e-4, before
    names = {'eval_margin', 'eval_grad_weight', 'eval_anchor_term', 'eval_negative_term'} if method == 'd2o' else \
        {'eval_rewards/margins', 'eval_rewards/accuracies', 'eval_logps/rejected', 'eval_logps/chosen'}
    assert names <= set(before), sorted(before)
    trainer.train()
    evals = [r for r in trainer.state.log_history if 'eval_loss' in r]
    assert len(evals) == STEPS // 2 and names <= set(evals[-1])
    assert len([r for r in trainer.state.log_history if 'loss' in r]) == STEPS
    assert not any(k.startswith('eval_') for r in trainer.state.log_history if 'loss' in r for k in r)   # metrics kept apart
    after = trainer.evaluate()
    assert after['eval_loss'] != before['eval_loss']
    raw = _only(data[12:], ('prompt', 'chosen', 'rejected', 'anchors', 'anchor_ids', 'prompt_ids'))   # no reference log-probs:
    with pytest.raises(ValueError, match='reference'): trainer.evaluate(raw)                           # the reference is gone
    trainer.evaluate(data[12:])                                          # with them, any rows are evaluated


def test_evaluate_prepares_a_dataset_passed_to_it(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    model.load_state_dict(start)
    trainer = D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=2, max_new_tokens=8), train_dataset=rows[:12],
                         processing_class=tok)
    out = trainer.evaluate(_only(rows[12:], ('prompt', 'rejected')))        # anchors sampled, references scored
    assert abs(out['eval_loss'] - math.log(2)) < 1e-4 and 'eval_margin' in out


@pytest.mark.parametrize('form,anchors', [('text', 'sampled'), ('text', 'precomputed'), ('ids', 'sampled'), ('ids', 'precomputed')])
def test_given_anchors_are_the_ones_trained_on(tiny, tmp_path, form, anchors):
    "Anchors in the rows are used as given (never re-sampled); their missing reference log-probs are scored on the same tokens."
    from d2o_edu.models import load_model, response_logps
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    model.load_state_dict(start)
    if form == 'text':
        odd = ['zebra crossing ahead', 'a quiet violet moon']
        data = [{'prompt': r['prompt'], 'rejected': r['rejected'], 'anchors': odd} for r in rows]
    else: data = _only(rows, ('prompt', 'rejected', 'anchors', 'anchor_ids', 'prompt_ids'))
    def no_sampling(*a, **kw): raise AssertionError('sampled anchors although the rows carry some')
    model.generate = no_sampling
    try: trainer = D2OTrainer(model, args=_args(tmp_path, anchors=anchors, K=5), train_dataset=data, processing_class=tok)
    finally: del model.generate
    prepared = trainer.train_dataset.rows
    for p, g in zip(prepared, data): assert p['anchors'] == g['anchors'] and p.get('anchor_ids') == g.get('anchor_ids')
    if form == 'text':
        fresh, _ = load_model('tiny-gpt2'); fresh.load_state_dict(start)
        expected = response_logps(fresh, tok, [r['prompt'] for r in data for _ in odd], [a for r in data for a in r['anchors']])
        torch.testing.assert_close(torch.tensor([r['ref_anchor_logps'] for r in prepared]), expected.view(-1, 2), rtol=0, atol=1e-4)
        seqs = trainer.train_dataset.encoded[0][:2]                      # what the loss forwards: the given strings
        assert [tok.decode([t for t, l in zip(s['input_ids'], s['labels']) if l != -100], skip_special_tokens=True).strip()
                for s in seqs] == odd
    else:                                                                # the ids as sampled, scored as sample_anchors did
        torch.testing.assert_close(torch.tensor([r['ref_anchor_logps'] for r in prepared]),
                                   torch.tensor([r['ref_anchor_logps'] for r in rows]), rtol=0, atol=1e-4)
    torch.testing.assert_close(torch.tensor([r['ref_rejected_logps'] for r in prepared]),
                               torch.tensor([r['ref_rejected_logps'] for r in rows]), rtol=0, atol=1e-4)
    trainer.train()
    assert abs(trainer.state.log_history[0]['loss'] - math.log(2)) < 1e-4


def test_anchor_columns_must_come_together(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    with pytest.raises(ValueError, match='ref_anchor_logps without anchors'):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=_only(rows, ('prompt', 'rejected', 'ref_anchor_logps', 'ref_rejected_logps')),
                   processing_class=tok)
    mixed = _only(rows, ('prompt', 'rejected', 'anchors')); del mixed[3]['anchors']
    with pytest.raises(ValueError, match='row 3 has no anchors'):
        D2OTrainer(model, args=_args(tmp_path, anchors='sampled'), train_dataset=mixed, processing_class=tok)


def _bf16_on_cpu():
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16): return torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    except Exception: return False


@pytest.mark.skipif(not _bf16_on_cpu(), reason='this torch has no bf16 autocast on the CPU')
@pytest.mark.parametrize('method', ['d2o', 'npo'])
def test_bf16_scores_the_reference_under_the_policys_autocast(tiny, tmp_path, method):
    "bf16=True: the references the trainer computes are scored in bf16 autocast on the trained tokens, as the policy's forward is."
    from d2o_edu.models import load_model, score_examples
    from d2o_edu.trainer import D2OTrainer
    _, tok, start, rows, _ = tiny
    model, _ = load_model('tiny-gpt2'); model.load_state_dict(start)     # its own copy: accelerate wraps its forward
    fresh, _ = load_model('tiny-gpt2'); fresh.load_state_dict(start)
    trainer = D2OTrainer(model, args=_args(tmp_path, method=method, anchors='sampled', K=2, max_new_tokens=8, bf16=True,
                                      max_steps=1), train_dataset=_only(rows, ('prompt', 'rejected')), processing_class=tok)
    assert trainer.accelerator.mixed_precision == 'bf16'
    rejected = [seqs[-1] for seqs in trainer.train_dataset.encoded]      # rejected is the last sequence of D²O and NPO
    expected = score_examples(fresh, rejected, tok.pad_token_id, mixed_precision='bf16')[0]
    assert torch.equal(torch.tensor([r['ref_rejected_logps'] for r in trainer.train_dataset.rows]), expected)
    trainer.train()
    first = trainer.state.log_history[0]
    if method == 'npo': assert first['rewards/rejected'] == 0.0, first   # one sequence per row: bit for bit at step 0
    else: assert abs(first['loss'] - math.log(2)) < 1e-3, first          # bf16 noise of the mixed batch (see the report)


def test_clear_errors_before_training_and_a_model_given_by_name(tiny, tmp_path):
    "max_length beyond the context and a model name that cannot be loaded fail at once, naming what is wrong; a folder loads."
    from d2o_edu.models import save_model, context_length
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, _ = tiny
    with pytest.raises(ValueError, match=rf'max_length=4096 .* \({context_length(model)} tokens\)'):
        D2OTrainer(model, args=_args(tmp_path, max_length=4096), train_dataset=rows, processing_class=tok)
    with pytest.raises(ValueError, match="cannot load the model 'no-such-org/no-such-model'"):
        D2OTrainer('no-such-org/no-such-model', args=_args(tmp_path), train_dataset=rows, processing_class=tok)
    model.load_state_dict(start)
    save_model(model, tok, tmp_path / 'tiny')
    trainer = D2OTrainer(str(tmp_path / 'tiny'), args=_args(tmp_path, max_steps=1, model_init_kwargs={'dtype': torch.float32}),
                         train_dataset=rows)                              # the tokenizer is loaded from the folder too
    assert trainer.model.dtype == torch.float32
    trainer.train()
    assert abs(trainer.state.log_history[0]['loss'] - math.log(2)) < 1e-4


def test_sampled_anchors_are_cached_by_content_and_reused(tiny, tmp_path):
    """Anchors the trainer samples are written to output_dir/anchors/ and read back by a second trainer on the same model,
    rows and settings (a resumed run); another reference model or K samples afresh."""
    from d2o_edu.trainer import D2OTrainer
    import d2o_edu.trainer as T
    model, tok, start, rows, _ = tiny
    model.load_state_dict(start)
    plain = [{'prompt': r['prompt'], 'rejected': r['rejected']} for r in rows[:8]]
    calls = []
    real = T.generate
    T.generate = lambda *a, **k: calls.append(k['num_return_sequences']) or real(*a, **k)
    try:
        first = D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=2, max_new_tokens=6), train_dataset=plain, processing_class=tok)
        again = D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=2, max_new_tokens=6), train_dataset=plain, processing_class=tok)
        assert calls == [2] and first.anchor_files == again.anchor_files and first.anchor_files[0].exists()
        for a, b in zip(first.train_dataset.rows, again.train_dataset.rows):
            assert a['anchor_ids'] == b['anchor_ids'] and a['anchors'] == b['anchors'] and a['ref_anchor_logps'] == b['ref_anchor_logps']
        D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=3, max_new_tokens=6), train_dataset=plain, processing_class=tok)
        with torch.no_grad(): next(model.parameters())[0, 0] += 1e-3          # another reference: its own samples
        D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=2, max_new_tokens=6), train_dataset=plain, processing_class=tok)
        assert calls == [2, 3, 2] and len(list((tmp_path / 'anchors').glob('*.json'))) == 3
        # another chat template writes other prompt tokens: sampled afresh, never the cached ids of the old template
        chat_tok = copy.deepcopy(tok)
        chat_tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
        templated = D2OTrainer(model, args=_args(tmp_path, anchors='sampled', K=2, max_new_tokens=6), train_dataset=plain, processing_class=chat_tok)
        assert calls == [2, 3, 2, 2] and len(list((tmp_path / 'anchors').glob('*.json'))) == 4
        assert templated.train_dataset.rows[0]['prompt_ids'] == chat_tok(f"<user>{plain[0]['prompt']}<assistant>", add_special_tokens=False)['input_ids']
    finally:
        T.generate = real
        model.load_state_dict(start)


def test_trl_conversational_and_kto_unpaired_formats_train_like_the_standard_one(tiny, tmp_path):
    "TRL's three column formats for the same negatives: standard, conversational (messages) and KTO's unpaired (label=False)."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows, pairs = tiny
    text = [{'prompt': r['prompt'], 'rejected': r['rejected'], 'anchors': r['anchors']} for r in rows]
    chat = [{'prompt': [{'role': 'user', 'content': r['prompt']}], 'rejected': [{'role': 'assistant', 'content': r['rejected']}],
             'anchors': r['anchors']} for r in rows]
    kto = [{'prompt': r['prompt'], 'completion': r['rejected'], 'label': False, 'anchors': r['anchors']} for r in rows]
    losses = []
    for name, data in (('text', text), ('chat', chat), ('kto', kto)):
        model.load_state_dict(start)
        trainer = D2OTrainer(model, args=_args(tmp_path / name, max_steps=2), train_dataset=data, processing_class=tok)
        trainer.train()
        losses.append([r['loss'] for r in trainer.state.log_history if 'loss' in r])
    assert losses[0] == losses[1] == losses[2] and len(losses[0]) == 2, losses
    bad = kto[:3] + [{**kto[3], 'label': True}]
    with pytest.raises(ValueError, match=r"row 3 has label=True"):
        D2OTrainer(model, args=_args(tmp_path / 'bad'), train_dataset=bad, processing_class=tok)
    with pytest.raises(ValueError, match=r"row 0: field 'rejected' must be a non-empty string or a list of chat messages"):
        D2OTrainer(model, args=_args(tmp_path / 'bad2'), train_dataset=[{**text[0], 'rejected': [{'text': 'x'}]}] + text[1:],
                   processing_class=tok)
