"Judges: bad inputs fail with messages that name the problem, and the tiny classifier folder is a real Hugging Face model."
import math
import pytest
import torch
from d2o_edu.harm_world import load_harm_world, harm_score, is_harmful
from d2o_edu.judges import (CallableJudge, ClassifierJudge, HarmWorldJudge, Judge, make_judge, parse_harm_labels,
                            train_tiny_harm_classifier, as_probability)


@pytest.fixture(scope='session')
def clf_dir(tmp_path_factory):
    return train_tiny_harm_classifier(tmp_path_factory.mktemp('judges') / 'tiny-harm-classifier', n_examples=400, steps=40)


@pytest.fixture(scope='module')
def rows():
    sft = load_harm_world('sft').select(range(40))
    return list(sft['prompt']), list(sft['response'])


def test_unknown_harm_label_lists_the_model_labels(clf_dir):
    with pytest.raises(ValueError, match=r"\['toxic'\] are not labels of the model; its labels are \['safe', 'unsafe'\]"):
        ClassifierJudge(clf_dir, harm_labels={'toxic': 1.0, 'unsafe': 1.0})
    with pytest.raises(ValueError, match=r"pass harm_labels.*\['safe', 'unsafe'\]"):
        ClassifierJudge(clf_dir, harm_labels=[])
    with pytest.raises(ValueError, match=r"weight of label 'unsafe'.*outside \[0, 1\]"):
        ClassifierJudge(clf_dir, harm_labels={'unsafe': 2.0})


@pytest.mark.parametrize('value, shown', [(1.5, '1.5'), (-0.1, '-0.1'), (float('nan'), 'nan'), (float('inf'), 'inf'),
                                          ('0.3', "'0.3'"), (None, 'None')])
def test_callable_judge_rejects_non_probabilities(value, shown):
    fn = lambda p, r: value if p == 'b' else 0.2
    with pytest.raises(ValueError, match=rf"bad-fn: harm of prompt 1 is {shown}"):
        CallableJudge(fn, name='bad-fn')(['a', 'b', 'c'], ['x', 'y', 'z'])


def test_callable_judge_checks_helpfulness_and_rows():
    judge = CallableJudge(lambda p, r: 0.5, lambda p, r: 1.01 if r == 'z' else 0.5, name='j')
    with pytest.raises(ValueError, match=r"j: helpfulness of prompt 2 is 1.01"):
        judge(['a', 'b', 'c'], ['x', 'y', 'z'])
    with pytest.raises(ValueError, match='2 prompts but 1 responses'):
        judge(['a', 'b'], ['x'])
    with pytest.raises(ValueError, match=r'j: response 0 is int'):
        judge(['a'], [3])
    out = judge(['a'], ['x'])
    assert out == [{'harm': 0.5, 'harmful': True, 'helpfulness': 0.5}]
    assert as_probability(torch.tensor(0.25)) == 0.25 and as_probability(True) == 1.0


def test_unloadable_model_name_offline(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    name = 'no-such-org/no-such-harm-classifier'
    with pytest.raises(ValueError) as e:
        make_judge(name, harm_labels='unsafe')
    msg = str(e.value)
    assert repr(name) in msg and 'Hub is unreachable' in msg and 'local folder' in msg, msg


def test_parse_harm_labels():
    assert parse_harm_labels('unsafe') == {'unsafe': 1.0}
    assert parse_harm_labels('LABEL_1=1,toxic=0.5') == {'LABEL_1': 1.0, 'toxic': 0.5}
    for bad, msg in [('toxic=x', "weight 'x' of label 'toxic'"), ('=1', 'has no label'), ('', 'at least one'),
                     ('toxic=1.5', 'not a number in')]:
        with pytest.raises(ValueError, match=msg):
            parse_harm_labels(bad)


def test_saved_folder_loads_through_transformers_pipeline(clf_dir, rows):
    from transformers import pipeline
    pipe = pipeline('text-classification', model=str(clf_dir), top_k=None)
    assert pipe.model.config.id2label == {0: 'safe', 1: 'unsafe'}
    prompts, responses = rows
    direct = pipe([{'text': p, 'text_pair': r} for p, r in zip(prompts, responses)])
    judged = ClassifierJudge(clf_dir, harm_labels=['unsafe'], batch_size=7)(prompts, responses)
    unsafe = [next(d['score'] for d in row if d['label'] == 'unsafe') for row in direct]
    assert max(abs(u - j['harm']) for u, j in zip(unsafe, judged)) < 1e-5
    assert all(j['helpfulness'] is None and j['harmful'] == (j['harm'] >= 0.5) for j in judged)


def test_tiny_classifier_learns_the_exact_judge(clf_dir, rows):
    "Even with 40 steps it must beat always-safe (65 % of SFT rows) on rows it may have seen."
    prompts, responses = rows
    judged = ClassifierJudge(clf_dir, harm_labels='unsafe')(prompts, responses)
    acc = sum(j['harmful'] == is_harmful(r) for j, r in zip(judged, responses)) / len(responses)
    assert acc >= 0.9, acc


def test_long_rows_are_truncated_not_fatal(clf_dir):
    judge = ClassifierJudge(clf_dir, harm_labels=['unsafe'], batch_size=2)
    long = 'Boil the water first. ' * 3000
    out = judge(['Hi?' * 2000, 'How do I cook rice?', 'x'], [long, 'Rinse it.', ''])
    assert len(out) == 3 and all(0 <= j['harm'] <= 1 and math.isfinite(j['harm']) for j in out)
    assert judge([], []) == []


def test_harm_world_judge_is_the_exact_judge(rows):
    prompts, responses = rows
    out = HarmWorldJudge()(prompts, responses)
    assert [j['harm'] for j in out] == [harm_score(r) for r in responses]
    assert [j['harmful'] for j in out] == [is_harmful(r) for r in responses]
    assert HarmWorldJudge()(['Who wrote Hamlet?'], ['Shakespeare.'])[0]['helpfulness'] is None


def test_make_judge_dispatch(clf_dir):
    assert make_judge(None) is None and make_judge('none') is None
    assert isinstance(make_judge('harm-world'), HarmWorldJudge)
    fn = lambda p, r: 0.0
    assert isinstance(make_judge(fn), CallableJudge)
    j = make_judge(clf_dir, harm_labels='unsafe')
    assert isinstance(j, ClassifierJudge) and isinstance(j, Judge) and make_judge(j) is j
    with pytest.raises(ValueError, match='only applies to a classifier judge'):
        make_judge('harm-world', harm_labels=['unsafe'])
    with pytest.raises(ValueError, match="judge 3: use 'harm-world'"):
        make_judge(3)


def test_sigmoid_labels_combine_as_noisy_or(clf_dir, tmp_path, rows):
    "A multi-label (sigmoid) classifier: harm = 1 - prod(1 - p*w), checked against sigmoids of the raw logits."
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    tok = AutoTokenizer.from_pretrained(clf_dir)
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128, num_labels=3, id2label={0: 'insult', 1: 'leak', 2: 'fine'},
                     label2id={'insult': 0, 'leak': 1, 'fine': 2}, problem_type='multi_label_classification')
    net = BertForSequenceClassification(cfg).eval()
    net.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    judge = ClassifierJudge(tmp_path, harm_labels='insult=1,leak=0.5')
    assert not judge.softmax
    prompts, responses = rows[0][:5], rows[1][:5]
    with torch.no_grad():
        p = [torch.sigmoid(net(**tok(a, b, return_tensors='pt')).logits[0]) for a, b in zip(prompts, responses)]
    expected = [1 - (1 - q[0].item()) * (1 - 0.5 * q[1].item()) for q in p]
    got = [j['harm'] for j in judge(prompts, responses)]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-5, (got, expected)


def test_threads_are_restored(clf_dir, rows):
    before = torch.get_num_threads()
    judge = ClassifierJudge(clf_dir, harm_labels='unsafe')
    assert judge.threads == 1
    judge(*rows)
    assert torch.get_num_threads() == before
    assert ClassifierJudge(clf_dir, harm_labels='unsafe', threads=None).threads is None
