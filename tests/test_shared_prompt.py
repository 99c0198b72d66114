"""Chapter 08b's packed forward (each row's prompt once, its responses after it) against the padded forward of chapter
08, through the training loop and `D2OTrainer`, where it must change nothing but the work done."""
import math, tempfile
import pytest
import torch


@pytest.fixture(scope='module')
def anchored():
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model
    from d2o_edu.sampling import AnchorConfig, sample_anchors
    model, tok = load_model('tiny-pythia')
    rows = [dict(r) for r in sample_anchors(model, tok, load_harm_world('negatives').select(range(8)),
                                             AnchorConfig(K=3, max_new_tokens=12), progress=False)]
    return model, tok, rows


def test_dpo_pairs_pack_too(anchored):
    "Chosen and rejected share the prompt as well: DPO's loss is unchanged by packing."
    from d2o_edu.variants import noisy_pairs
    from d2o_edu.sampling import score_pairs
    from d2o_edu.training import TrainConfig, encode_rows, method_loss
    model, tok, _ = anchored
    pairs = [dict(r) for r in score_pairs(model, tok, noisy_pairs(0.3).select(range(4)), progress=False)]
    enc = encode_rows(pairs, 'dpo', tok, 128)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.01)   # away from the reference: a non-trivial loss
    losses = [method_loss(model.eval(), pairs, enc, TrainConfig(method='dpo', share_prompt=s), tok.pad_token_id, 'cpu')[0].item()
              for s in (False, True)]
    assert abs(losses[0] - math.log(2)) > 1e-4
    assert abs(losses[1] - losses[0]) < 1e-5, losses


def test_rows_truncated_apart_fall_back_to_the_padded_forward(anchored):
    "With max_length cutting the prompt to different lengths per response, packing is refused and the padded forward used."
    from d2o_edu.shared_prompt import shared_prompt_logps
    from d2o_edu.training import TrainConfig, encode_rows, method_loss
    model, tok, rows = anchored
    long = [{**r, 'rejected': r['rejected'] + ' and more words' * 6} for r in rows[:2]]   # a long negative next to short anchors
    enc = encode_rows(long, 'd2o', tok, 24)
    assert shared_prompt_logps(model, enc, ['anchors', 'rejected'], tok.pad_token_id, 'cpu') is None
    a = method_loss(model.eval(), long, enc, TrainConfig(share_prompt=True), tok.pad_token_id, 'cpu')[0]
    b = method_loss(model.eval(), long, enc, TrainConfig(share_prompt=False), tok.pad_token_id, 'cpu')[0]
    assert a.item() == b.item()


def test_trainer_share_prompt_trains_the_same(anchored):
    from d2o_edu.models import load_model
    from d2o_edu.trainer import D2OTrainer, D2OConfig
    _, tok, rows = anchored
    logs = {}
    for share in (False, True):
        model = load_model('tiny-pythia')[0]
        t = D2OTrainer(model, args=D2OConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, max_steps=3, logging_steps=1,
                                        learning_rate=1e-3, save_strategy='no', use_cpu=True, disable_tqdm=True, share_prompt=share),
                       train_dataset=rows, processing_class=tok)
        t.train()
        logs[share] = [r['loss'] for r in t.state.log_history if 'loss' in r]
    assert len(logs[True]) == 3 and abs(logs[True][0] - math.log(2)) < 1e-5
    assert max(abs(a - b) for a, b in zip(logs[True], logs[False])) < 1e-5, logs
