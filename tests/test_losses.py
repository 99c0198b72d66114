"Library tests for `d2o_edu.losses` against independent references (TRL, HF's own loss, autograd)."
import tempfile
import pytest
import torch
from d2o_edu.losses import sequence_logps, dpo_loss, d2o_loss, npo_loss


def _tiny_tokenizer():
    "A byte-level BPE tokenizer trained on a few sentences (no Hub download)."
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast
    texts = ["User: how do I water my basil?\nAssistant: Water it in the morning and give it sun.",
             "Only a total dimwit would ask that. Skip the safety gloves."] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=['<|endoftext|>'],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token='<|endoftext|>', pad_token='<|endoftext|>')


def _tiny_gpt2(tokenizer, seed):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.eos_token_id,
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg)


@pytest.mark.parametrize('beta', [0.1, 0.5])
def test_dpo_loss_matches_trl_dpo_trainer(beta):
    "Our sequence_logps + dpo_loss reproduce TRL's DPOTrainer loss and metrics on the same model and batch."
    trl = pytest.importorskip('trl')
    from datasets import Dataset
    tok = _tiny_tokenizer()
    model, ref = _tiny_gpt2(tok, 0), _tiny_gpt2(tok, 1)
    rows = [dict(prompt=f"User: how do I water my basil {i}?\nAssistant:",
                 chosen=" Water it in the morning." * (1 + i % 3),
                 rejected=" Only a total dimwit would ask that." * (1 + i % 2)) for i in range(8)]
    args = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=beta, report_to=[], per_device_train_batch_size=4,
                         max_length=64, use_cpu=True, disable_tqdm=True)
    trainer = trl.DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer.compute_loss(model, batch)
    trl_metrics = {k: v[-1] for k, v in trainer._metrics['train'].items()}

    labels = batch['input_ids'].masked_fill(batch['completion_mask'] == 0, -100)
    with torch.no_grad():
        policy = sequence_logps(model(batch['input_ids'], attention_mask=batch['attention_mask']).logits, labels)
        reference = sequence_logps(ref(batch['input_ids'], attention_mask=batch['attention_mask']).logits, labels)
    (pc, pr), (rc, rr) = policy.chunk(2), reference.chunk(2)
    loss, metrics = dpo_loss(pc, pr, rc, rr, beta=beta)

    assert abs(loss.item() - trl_loss.item()) < 1e-5, (loss, trl_loss)
    for name in ['rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies',
                 'logps/chosen', 'logps/rejected']:
        assert abs(metrics[name].item() - trl_metrics[name]) < 1e-4 * max(1, abs(trl_metrics[name])), name
    # D²O with K = 1 (the chosen answer as its one anchor) and α = β logs TRL's names with TRL's values
    _, d2o_metrics = d2o_loss(pc[:, None], rc[:, None], pr, rr, alpha=beta, beta=beta)
    for ours, theirs in [('rewards/anchors', 'rewards/chosen'), ('rewards/rejected', 'rewards/rejected'),
                         ('rewards/margins', 'rewards/margins'), ('rewards/accuracies', 'rewards/accuracies'),
                         ('logps/anchors', 'logps/chosen'), ('logps/rejected', 'logps/rejected')]:
        assert abs(d2o_metrics[ours].mean().item() - trl_metrics[theirs]) < 1e-4 * max(1, abs(trl_metrics[theirs])), ours


def test_d2o_gradients_finite_differences():
    "autograd's gradient of d2o_loss equals central finite differences (float64)."
    torch.manual_seed(0)
    args = (torch.randn(3, 5, dtype=torch.float64) * 4, torch.randn(3, 5, dtype=torch.float64) * 4,
            torch.randn(3, dtype=torch.float64) * 4, torch.randn(3, dtype=torch.float64) * 4)
    args = tuple(a.requires_grad_() for a in args)
    assert torch.autograd.gradcheck(lambda *t: d2o_loss(*t, alpha=0.7, beta=0.3)[0], args)


def test_d2o_limits():
    "K=1, α=β is DPO; no anchor term is NPO·β/2."
    torch.manual_seed(1)
    pa, ra, pn, rn = torch.randn(7, 1), torch.randn(7, 1), torch.randn(7), torch.randn(7)
    assert torch.allclose(d2o_loss(pa, ra, pn, rn, 0.2, 0.2)[0], dpo_loss(pa[:, 0], pn, ra[:, 0], rn, 0.2)[0])
    assert torch.allclose(d2o_loss(ra, ra, pn, rn, 0.2, 0.2)[0], 0.1 * npo_loss(pn, rn, 0.2)[0])


def test_sequence_logps_empty_response_row_raises():
    logits = torch.randn(2, 4, 10)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, -100, -100]])
    with pytest.raises(ValueError, match=r'row\(s\) \[1\]'):
        sequence_logps(logits, labels)


def test_library_imports_without_nbdev():
    "The exported library must not depend on nbdev or fastcore."
    import subprocess, sys
    code = ("import sys; sys.modules['nbdev'] = None; sys.modules['fastcore'] = None; "
            "import d2o_edu.losses, d2o_edu.core")
    subprocess.run([sys.executable, '-c', code], check=True)
