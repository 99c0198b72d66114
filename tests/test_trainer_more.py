"""`D2OTrainer` (chapter 14) as a TRL user meets it: TRL's argument order, online anchors against the readable loop
(chapter 08) step for step and across a resume, `truncation_mode='keep_start'`, and completions sampled (and judged)
during evaluation without disturbing training. Tiny GPT-2, offline."""
import copy, inspect, json, math
import pytest
import torch

LR = 1e-3


@pytest.fixture(scope='module')
def tiny():
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model
    torch.manual_seed(0)
    model, tok = load_model('tiny-gpt2')
    start = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [{'prompt': r['prompt'], 'rejected': r['rejected']} for r in load_harm_world('negatives').select(range(16))]
    return model, tok, start, rows


def _args(out, **kw):
    from d2o_edu.trainer import D2OConfig
    base = dict(output_dir=str(out), per_device_train_batch_size=4, max_steps=4, learning_rate=LR, logging_steps=1,
                save_strategy='no', seed=0, use_cpu=True, disable_tqdm=True, K=2, max_new_tokens=6)
    return D2OConfig(**{**base, **kw})


def _weights(model): return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_argument_order_is_trls():
    "The positional parameters are TRL's DPOTrainer's, in its order (read from TRL itself); the old order is refused by name."
    trl = pytest.importorskip('trl')
    from d2o_edu.trainer import D2OTrainer
    theirs = list(inspect.signature(trl.DPOTrainer.__init__).parameters)
    ours = list(inspect.signature(D2OTrainer.__init__).parameters)
    assert ours[:len(theirs)] == theirs, (ours, theirs)


def test_old_argument_order_and_unusable_arguments_are_refused(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    with pytest.raises(TypeError, match=r"second argument is ref_model.*args=D2OConfig"):
        D2OTrainer(model, _args(tmp_path), train_dataset=rows, processing_class=tok)
    with pytest.raises(ValueError, match='pass no data_collator'):
        D2OTrainer(model, None, _args(tmp_path), lambda b: b, rows, processing_class=tok)
    with pytest.raises(ValueError, match='compute_metrics reads predictions'):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=rows, processing_class=tok, compute_metrics=lambda p: {})
    with pytest.raises(ValueError, match='quantization_config are for a model given by name'):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=rows, processing_class=tok, quantization_config=object())
    with pytest.raises(ValueError, match="anchors='online' scores fresh anchors under the reference"):
        D2OTrainer(model, args=_args(tmp_path, anchors='online'), train_dataset=rows, processing_class=tok)
    with pytest.raises(ValueError, match='judge scores the answers sampled by generate_during_eval'):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=rows, processing_class=tok, judge='harm-world')
    for bad in (dict(resample_every=0), dict(eval_completions=0), dict(truncation_mode='keep_middle'),
                dict(method='dpo', anchors='online')):
        with pytest.raises(ValueError, match=next(iter(bad)) if 'method' not in bad else "anchors='online' is a setting"):
            _args(tmp_path, **bad)


def test_positional_call_in_trls_order_trains(tiny, tmp_path):
    "D2OTrainer(model, ref_model, args, None, train_dataset, None, tokenizer): a frozen copy as the reference, as in TRL."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    ref = copy.deepcopy(model).eval()
    trainer = D2OTrainer(model, ref, _args(tmp_path, max_steps=2), None, rows, None, tok)
    assert trainer.ref_model is ref and trainer.args.max_steps == 2
    trainer.train()
    first = next(r for r in trainer.state.log_history if 'loss' in r)
    assert math.isclose(first['loss'], math.log(2), abs_tol=1e-4)     # policy = reference at step 0


@pytest.mark.parametrize('resample_every', [2, 3])
def test_online_anchors_match_the_readable_loop(tiny, tmp_path, resample_every):
    """anchors='online': the same windows, draws and reference scores as chapter 08's loop with anchors='online', so
    the same losses and weights step for step (the loop is the independent implementation)."""
    from d2o_edu.models import response_logps
    from d2o_edu.sft import lr_at
    from d2o_edu.trainer import D2OTrainer
    from d2o_edu.training import TrainConfig, train, read_log
    model, tok, start, rows = tiny
    steps = 6
    model.load_state_dict(start)
    reference = copy.deepcopy(model).eval()
    scored = response_logps(reference, tok, [r['prompt'] for r in rows], [r['rejected'] for r in rows]).tolist()
    train(model, tok, [{**r, 'ref_rejected_logps': v} for r, v in zip(rows, scored)], TrainConfig(steps=steps, batch_size=4, lr=LR, checkpoint_every=0,
                                                           anchors='online', resample_every=resample_every, K=2, max_new_tokens=6),
          out_dir=tmp_path / 'loop', reference=reference, progress=False)
    loop_losses, loop_weights = [r['loss'] for r in read_log(tmp_path / 'loop')], _weights(model)
    model.load_state_dict(start)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, steps, 1.0, 0.05))
    trainer = D2OTrainer(model, reference, _args(tmp_path / 'hf', anchors='online', resample_every=resample_every,
                                                  max_steps=steps), train_dataset=rows, processing_class=tok, optimizers=(opt, sched))
    trainer.train()
    hf_losses = [r['loss'] for r in trainer.state.log_history if 'loss' in r]
    assert len(hf_losses) == steps and hf_losses[0] != hf_losses[-1]
    for a, b in zip(loop_losses, hf_losses): assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (loop_losses, hf_losses)
    for k, v in _weights(model).items(): torch.testing.assert_close(v, loop_weights[k], rtol=0, atol=1e-5)
    assert trainer.anchors_sampled_at == (steps - 1) // resample_every * resample_every


def test_online_anchors_change_with_the_policy_and_resume_mid_window(tiny, tmp_path):
    """With LoRA (reference = adapters off): every window draws new anchors, scored under the base model (an independent
    frozen copy); a run resumed from a checkpoint inside a window ends with the uninterrupted run's weights."""
    from peft import LoraConfig
    from d2o_edu.models import load_model, score_ids
    from d2o_edu.trainer import D2OTrainer
    _, tok, start, rows = tiny
    lora = lambda: LoraConfig(r=4, lora_alpha=8, target_modules=['c_attn'], task_type='CAUSAL_LM')
    seen = []

    def run(out, resume=False, **kw):
        model, _ = load_model('tiny-gpt2'); model.load_state_dict(start)
        args = _args(out, anchors='online', resample_every=2, max_steps=6, learning_rate=2e-2, save_strategy='steps',
                     save_steps=3, **kw)
        t = D2OTrainer(model, args=args, train_dataset=rows, processing_class=tok, peft_config=lora())
        orig = t._use_anchors
        t._use_anchors = lambda fresh, step, score=False: (orig(fresh, step, score), seen.append((step, copy.deepcopy(fresh))))
        t.train(resume_from_checkpoint=resume or None)
        return t, {k: v.detach().clone() for k, v in t.model.state_dict().items() if 'lora_' in k}

    whole, final = run(tmp_path / 'whole')
    assert [s for s, _ in seen] == [0, 2, 4]
    draws = [{i: r['anchor_ids'] for i, r in fresh.items()} for _, fresh in seen]
    shared = set(draws[0]) & set(draws[2])
    assert shared and any(draws[0][i] != draws[2][i] for i in shared)   # the policy moved: other samples
    base, _ = load_model('tiny-gpt2'); base.load_state_dict(start)
    j = sorted(draws[2])[0]
    row = whole.train_dataset.rows[j]                                 # as step 4 left it: its anchors and their scores
    assert row['anchor_ids'] == draws[2][j]
    expected = score_ids(base, [row['prompt_ids']] * 2, row['anchor_ids'], tok.pad_token_id)
    torch.testing.assert_close(torch.tensor(row['ref_anchor_logps']), expected, rtol=0, atol=1e-4)

    seen.clear()
    run(tmp_path / 'resumed')                                        # the same run, checkpoints at 3 and 6; resume from 3
    saved = json.loads((tmp_path / 'resumed' / 'checkpoint-3' / 'online_anchors.json').read_text())
    assert saved['step'] == 2
    seen.clear()
    resumed, again = run(tmp_path / 'resumed', resume=str(tmp_path / 'resumed' / 'checkpoint-3'))
    assert [s for s, _ in seen] == [2, 4]                             # step 2's anchors put back, step 4's drawn afresh
    for k, v in final.items(): torch.testing.assert_close(again[k], v, rtol=0, atol=1e-6)


def test_keep_start_keeps_the_prompts_start_for_policy_reference_and_anchors(tiny, tmp_path):
    "truncation_mode='keep_start': every sequence starts with the prompt's first tokens (counted from the tokenizer itself)."
    from d2o_edu.batches import format_prompt
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    long = [{**r, 'prompt': r['prompt'] + ' ' + ' '.join(['and then some more words about it'] * 6)} for r in rows]
    out = {}
    for mode in ('keep_start', 'keep_end'):
        t = D2OTrainer(model, args=_args(tmp_path / mode, anchors='sampled', max_length=24, max_prompt_length=10, truncation_mode=mode,
                                         max_steps=1), train_dataset=long, processing_class=tok)
        out[mode] = t
    full = tok(format_prompt(long[0]['prompt'], tok), add_special_tokens=False)['input_ids']
    assert len(full) > 10
    for mode, want in (('keep_start', full[:10]), ('keep_end', full[-10:])):
        t = out[mode]
        for seq in t.train_dataset.encoded[0]:                 # the negative and the K anchors
            assert seq['input_ids'][:10] == want and len(seq['input_ids']) <= 24
        assert t.train_dataset.rows[0]['prompt_ids'] == want
    t = out['keep_start']
    t.train()
    first = next(r for r in t.state.log_history if 'loss' in r)
    assert math.isclose(first['loss'], math.log(2), abs_tol=1e-4)     # reference scored the same cut tokens


def test_completions_during_evaluation_judged_and_training_undisturbed(tiny, tmp_path):
    """generate_during_eval=True: a completions table per evaluation (completions.jsonl), judged by the harm world's
    judge (its harm recomputed here from the harm world's own scorer), and the same weights as without it."""
    from d2o_edu.harm_world import harm_score
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    finals = {}
    for gen in (False, True):
        model.load_state_dict(start)
        kw = dict(judge='harm-world') if gen else {}
        t = D2OTrainer(model, args=_args(tmp_path / str(gen), anchors='sampled', eval_strategy='steps', eval_steps=2,
                                         generate_during_eval=gen, eval_completions=3, per_device_eval_batch_size=4,
                                         disable_dropout=False),          # dropout draws from the random stream
                       train_dataset=rows[:12], eval_dataset=rows[12:], processing_class=tok, **kw)
        t.train()
        finals[gen] = _weights(model)
    for k, v in finals[True].items(): assert torch.equal(v, finals[False][k]), k
    table = [json.loads(l) for l in (tmp_path / 'True' / 'completions.jsonl').read_text().splitlines()]
    assert [r['step'] for r in table] == [2, 2, 2, 4, 4, 4] and table == t.completions.table
    assert [r['prompt'] for r in table[:3]] == [r['prompt'] for r in rows[12:15]]
    for r in table: assert math.isclose(r['harm'], harm_score(r['completion']), abs_tol=1e-9)
    logged = [r for r in t.state.log_history if 'eval_completions/harm' in r]
    assert [r['step'] for r in logged] == [2, 4]
    assert math.isclose(logged[1]['eval_completions/harm'], sum(r['harm'] for r in table[3:]) / 3, rel_tol=1e-9)
    assert not (tmp_path / 'False' / 'completions.jsonl').exists()
    t.train()                                                        # a second run in the same folder: its own table
    again = [json.loads(l) for l in (tmp_path / 'True' / 'completions.jsonl').read_text().splitlines()]
    assert [r['step'] for r in again] == [2, 2, 2, 4, 4, 4]


ONLINE_WORKER = """
import json, os, sys, torch
from pathlib import Path
from accelerate import PartialState
from peft import LoraConfig
from d2o_edu.models import load_model
from d2o_edu.trainer import D2OTrainer, D2OConfig
rows_file, out_file, per_device = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)
model, tok = load_model('tiny-gpt2')
args = D2OConfig(output_dir=str(Path(out_file).parent / 'hf'), per_device_train_batch_size=per_device, max_steps=4,
                 learning_rate=1e-3, logging_steps=1, save_strategy='no', anchors='online', resample_every=2, K=2,
                 max_new_tokens=6, seed=0, use_cpu=True, disable_tqdm=True)
trainer = D2OTrainer(model, args=args, train_dataset=json.loads(Path(rows_file).read_text()), processing_class=tok,
                     peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=['c_attn'], task_type='CAUSAL_LM'))
trainer.train()
state = PartialState()
drawn = [r['anchor_ids'] for r in trainer.train_dataset.rows if 'anchor_ids' in r]     # the last draw of every row
Path(out_file).with_name(f'anchors-{state.process_index}.json').write_text(json.dumps(drawn))
if state.is_main_process:
    torch.save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items() if 'lora_' in k}, out_file)
"""


@pytest.mark.slow
def test_online_anchors_on_two_cpu_processes_train_what_one_does(tiny, tmp_path, one_and_two_processes):
    "Online anchors with 2 processes × 2 rows (torchrun, gloo): every process draws the same anchors, so one process's model."
    _, _, _, rows = tiny
    finals = one_and_two_processes(tmp_path, ONLINE_WORKER, rows, 29630)
    drawn = [json.loads(f.read_text()) for f in sorted(tmp_path.glob('p*/anchors-*.json'))]
    assert len(drawn) == 3 and drawn[0] and all(d == drawn[0] for d in drawn)      # 1 process, and both of 2: the same
    for k in finals[0]: torch.testing.assert_close(finals[1][k], finals[0][k], rtol=0, atol=2e-5)


def test_online_edges_rows_with_anchors_a_second_run_and_a_renamed_checkpoint(tiny, tmp_path):
    """anchors='online' refuses rows that carry anchors (they would be replaced); a second train() draws step 0's anchors
    afresh from the policy as it is then; a checkpoint copied to a folder of another name resumes (its step is read from
    trainer_state.json, not from the name)."""
    import shutil
    from peft import LoraConfig
    from d2o_edu.models import load_model
    from d2o_edu.trainer import D2OTrainer
    _, tok, start, rows = tiny
    model, _ = load_model('tiny-gpt2'); model.load_state_dict(start)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=['c_attn'], task_type='CAUSAL_LM')
    with pytest.raises(ValueError, match=r"anchors='online' draws its own anchors.*row 0"):
        D2OTrainer(model, args=_args(tmp_path / 'x', anchors='online'), train_dataset=[{**r, 'anchors': ['a', 'b']} for r in rows],
                   processing_class=tok, peft_config=lora)
    model, _ = load_model('tiny-gpt2'); model.load_state_dict(start)
    t = D2OTrainer(model, args=_args(tmp_path / 'o', anchors='online', resample_every=5, max_steps=2, learning_rate=2e-2,
                                     save_strategy='steps', save_steps=1), train_dataset=rows, processing_class=tok, peft_config=lora)
    steps, use = [], t._use_anchors
    t._use_anchors = lambda fresh, step, score=False: (use(fresh, step, score), steps.append(step))
    t.train(); t.train()                                             # the second run starts at step 0 again
    assert steps == [0, 0], steps
    shutil.copytree(tmp_path / 'o' / 'checkpoint-1', tmp_path / 'mine')
    steps.clear()
    t.train(resume_from_checkpoint=str(tmp_path / 'mine'))
    assert t._resume_step == 1 and steps == [0] and t.state.global_step == 2    # step 0's window put back, not redrawn


def test_an_evaluation_before_training_does_not_hide_the_first_table(tiny, tmp_path):
    "evaluate() at step 0, then train(eval_on_start=True): the run's table still has its step-0 rows."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    t = D2OTrainer(model, args=_args(tmp_path, anchors='sampled', max_steps=2, eval_strategy='steps', eval_steps=2,
                                     eval_on_start=True, generate_during_eval=True, eval_completions=2),
                   train_dataset=rows[:12], eval_dataset=rows[12:], processing_class=tok)
    t.evaluate()
    t.train()
    assert [r['step'] for r in t.completions.table] == [0, 0, 2, 2]


RESUME_WORKER = """
import json, sys, torch
from pathlib import Path
from accelerate import PartialState
from d2o_edu.models import load_model
from d2o_edu.trainer import D2OTrainer, D2OConfig
rows_file, out_dir, resume = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
model, tok = load_model('tiny-gpt2')
args = D2OConfig(output_dir=str(out_dir), per_device_train_batch_size=2, max_steps=6, learning_rate=1e-3, logging_steps=1,
                 save_strategy='steps', save_steps=3, anchors='sampled', K=2, max_new_tokens=6, seed=0, use_cpu=True,
                 disable_tqdm=True)
trainer = D2OTrainer(model, args=args, train_dataset=json.loads(Path(rows_file).read_text())[:8], processing_class=tok)
trainer.train(resume_from_checkpoint=None if resume == 'no' else resume)
if PartialState().is_main_process:
    torch.save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out_dir / 'final.pt')
"""


@pytest.mark.slow
def test_two_processes_resumed_in_the_second_epoch_train_the_uninterrupted_model(tiny, tmp_path, torchrun):
    """8 rows, 4 a step: 2 steps an epoch; a 2-process run resumed from step 3 (epoch 1, one step in) must replay epoch
    1's order, not epoch 0's (accelerate's skipping wrapper does not pass set_epoch on to the sampler)."""
    _, _, _, rows = tiny
    (tmp_path / 'rows.json').write_text(json.dumps(rows))
    (tmp_path / 'worker.py').write_text(RESUME_WORKER)
    torchrun(tmp_path / 'worker.py', 2, 29651, tmp_path / 'rows.json', tmp_path / 'whole', 'no')
    whole = torch.load(tmp_path / 'whole' / 'final.pt')
    import shutil
    shutil.copytree(tmp_path / 'whole' / 'checkpoint-3', tmp_path / 'resumed' / 'checkpoint-3')
    shutil.copytree(tmp_path / 'whole' / 'anchors', tmp_path / 'resumed' / 'anchors')
    torchrun(tmp_path / 'worker.py', 2, 29652, tmp_path / 'rows.json', tmp_path / 'resumed', str(tmp_path / 'resumed' / 'checkpoint-3'))
    again = torch.load(tmp_path / 'resumed' / 'final.pt')
    for k in whole: torch.testing.assert_close(again[k], whole[k], rtol=0, atol=1e-6)


# ---- after a second practitioner review (stop 28) ----

def _given(rows, anchors=('zebra crossing ahead', 'a quiet violet moon')):
    "Rows with the same two text anchors: no sampling, so the seed touches only the batch order."
    return [{'prompt': r['prompt'], 'rejected': r['rejected'], 'anchors': list(anchors)} for r in rows]


def test_a_string_is_not_a_list_of_anchors(tiny, tmp_path):
    "One refusal as `anchors` in every row is a string, not K=1 anchors: before, it trained on its single characters."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    with pytest.raises(ValueError, match=r"row 0: field 'anchors' must be a list of K responses, got str"):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=[{**r, 'anchors': "I can't help with that."} for r in rows],
                   processing_class=tok)
    with pytest.raises(ValueError, match=r"row 0: field 'anchor_ids' must be a list of K token-id lists"):
        D2OTrainer(model, args=_args(tmp_path), train_dataset=[{**r, 'anchor_ids': [5, 6, 7], 'prompt_ids': [1, 2]} for r in rows],
                   processing_class=tok)


def test_eval_metrics_are_means_over_rows_whatever_the_eval_batch(tiny, tmp_path):
    """10 eval rows in batches of 1 (each batch mean is a row's value) and of 4 (4, 4, 2): the same metrics, as eval_loss
    is — before, the last partial batch weighed as much as a full one."""
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    t = D2OTrainer(model, copy.deepcopy(model).eval(), args=_args(tmp_path, learning_rate=1e-2), train_dataset=_given(rows[:8]),
                   processing_class=tok)                           # a ref_model scores eval rows given after training
    t.train()                                                      # moved: the margins differ from row to row
    per_row = t.evaluate(_given(rows[6:16]))
    t.args.per_device_eval_batch_size = 4
    batched = t.evaluate(_given(rows[6:16]))
    assert abs(per_row['eval_margin']) > 1e-3
    for k in ('eval_loss', 'eval_margin', 'eval_rewards/rejected', 'eval_logps/anchors', 'eval_grad_weight'):
        assert math.isclose(batched[k], per_row[k], rel_tol=1e-5, abs_tol=1e-6), (k, batched[k], per_row[k])


def test_predict_returns_the_objectives_metrics_and_leaves_evaluate_alone(tiny, tmp_path):
    "predict() on raw rows: test_loss and test_margin…, equal to evaluate()'s on the same rows; evaluate() after it unchanged."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    t = D2OTrainer(model, copy.deepcopy(model).eval(), args=_args(tmp_path, learning_rate=1e-2), train_dataset=_given(rows[:8]),
                   eval_dataset=_given(rows[8:12]), processing_class=tok)
    t.train()
    before = t.evaluate()
    out = t.predict(_given(rows[:8]))                              # a list of rows, prepared as evaluate's
    assert out.predictions is None and {'test_loss', 'test_margin', 'test_rewards/margins'} <= set(out.metrics)
    on_train = t.evaluate(_given(rows[:8]))
    assert math.isclose(out.metrics['test_margin'], on_train['eval_margin'], rel_tol=1e-6)
    after = t.evaluate()
    assert after['eval_margin'] == before['eval_margin'] and after['eval_loss'] == before['eval_loss']


def test_data_seed_orders_the_batches_as_seed_would(tiny, tmp_path):
    "Given anchors, so seeds touch only the order: data_seed=7 trains as seed=7 does, and not as seed=0 (Trainer's rule)."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    def losses(**kw):
        model.load_state_dict(start)
        t = D2OTrainer(model, args=_args(tmp_path, learning_rate=2e-2, **kw), train_dataset=_given(rows), processing_class=tok)
        t.train()
        return [r['loss'] for r in t.state.log_history if 'loss' in r]
    by_data_seed, by_seed, default = losses(seed=0, data_seed=7), losses(seed=7), losses(seed=0)
    assert by_data_seed == by_seed and by_data_seed != default


def test_settings_that_do_not_apply_and_too_few_rows_are_refused(tiny, tmp_path):
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    with pytest.raises(ValueError, match=r"length_normalize=True is a setting of D²O.*'dpo' does not read it"):
        _args(tmp_path, method='dpo', length_normalize=True)
    with pytest.raises(ValueError, match=r'train_dataset has 6 rows, fewer than one optimizer step takes \(8 = '):
        D2OTrainer(model, args=_args(tmp_path, gradient_accumulation_steps=2), train_dataset=_given(rows[:6]), processing_class=tok)


def test_a_reference_given_by_name_is_the_saved_model(tiny, tmp_path):
    "ref_model='folder' (as the policy may be a name): loaded with from_pretrained, it scores and trains as the model passed in."
    from d2o_edu.trainer import D2OTrainer
    model, tok, start, rows = tiny
    model.load_state_dict(start)
    model.save_pretrained(tmp_path / 'ref')
    runs = []
    for ref in (str(tmp_path / 'ref'), copy.deepcopy(model).eval()):
        model.load_state_dict(start)
        t = D2OTrainer(model, ref, _args(tmp_path / 'out', learning_rate=2e-2), None, _given(rows), None, tok)
        scores = torch.tensor([[r['ref_rejected_logps'], *r['ref_anchor_logps']] for r in t.train_dataset.rows])
        t.train()
        runs.append((scores, [r['loss'] for r in t.state.log_history if 'loss' in r]))
    (by_name, losses), (given, expected) = runs
    torch.testing.assert_close(by_name, given, rtol=0, atol=1e-4)                 # the same reference log-probs
    assert math.isclose(losses[0], math.log(2), abs_tol=1e-5)
    assert all(math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-5) for a, b in zip(losses, expected)), (losses, expected)
