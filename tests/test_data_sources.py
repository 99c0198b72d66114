"Bad input through the data sources, and the edge cases of prompt/response truncation: errors must name the file, field or value."
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from d2o_edu.sources import data_source, load_negatives
from d2o_edu.batches import encode_example, encode_prompt, format_prompt, truncation_stats

FIXTURES = Path(__file__).parent / 'fixtures'


def _write(path, rows):
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows), encoding='utf-8')
    return path


@pytest.fixture(scope='module')
def tokenizer():
    "A small byte-level BPE (every string encodes), trained on a few sentences."
    texts = ["User: How do I keep my basil healthy?\nAssistant: Water the roots when the soil is dry."] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=['<|endoftext|>'],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token='<|endoftext|>', pad_token='<|endoftext|>')


# --- data sources: bad input ---------------------------------------------------------------------------

def test_pairs_from_a_file_without_chosen_names_file_and_field():
    src = data_source(str(FIXTURES / 'own_negatives.jsonl'))
    with pytest.raises(ValueError, match=r"own_negatives\.jsonl: row 0 has no field 'chosen'"):
        src.pairs()


def test_pairs_names_the_first_row_without_chosen(tmp_path):
    f = _write(tmp_path / 'mixed.jsonl', [dict(prompt='a', chosen='b', rejected='c'), dict(prompt='d', rejected='e')])
    with pytest.raises(ValueError, match=r"mixed\.jsonl: row 1 has no field 'chosen'"):
        data_source(f).pairs()


@pytest.mark.parametrize('name', ['beavertails', 'no/such/file.jsonl'])
def test_unknown_source_names_the_value_and_the_choices(name):
    with pytest.raises(ValueError) as e:
        data_source(name)
    assert f"source={name!r}: unknown source" in str(e.value) and "'pku-saferlhf'" in str(e.value)
    with pytest.raises(ValueError) as e_old:
        load_negatives(name)
    assert str(e.value) == str(e_old.value)


def test_names_are_case_insensitive():
    assert data_source('HARM-WORLD').name == 'harm-world'
    assert data_source('Hh-Rlhf', data_files=FIXTURES / 'hh_rlhf_sample.jsonl').name == 'hh-rlhf'


def test_too_few_rows_for_eval_names_file_rows_and_n_train(tmp_path):
    f = _write(tmp_path / 'tiny.jsonl', [dict(prompt=f'q{i}', rejected='no') for i in range(3)])
    src = data_source(str(f))
    assert src.eval_prompts(5, 2) == ['q2']
    with pytest.raises(ValueError, match=r"tiny\.jsonl has 3 rows: no prompt left for evaluation after n_train=3"):
        src.eval_prompts(5, 3)


def test_eval_prompts_never_repeat_a_training_prompt(tmp_path):
    f = _write(tmp_path / 'rep.jsonl', [dict(prompt=p, rejected='no') for p in ['a', 'b', 'a', 'b']])
    with pytest.raises(ValueError, match=r"rep\.jsonl has 4 rows: .*n_train=2"):
        data_source(f).eval_prompts(5, 2)


def test_hub_source_with_one_file_excludes_training_prompts():
    src = data_source('hh-rlhf', data_files=FIXTURES / 'hh_rlhf_sample.jsonl')
    train = set(src.negatives()['prompt'][:6])
    held = src.eval_prompts(10, 6)
    assert held and not train & set(held)
    with pytest.raises(ValueError, match=r"hh-rlhf: .*n_train=8"):
        src.eval_prompts(10, 8)


@pytest.mark.parametrize('n_eval, n_train, message', [(0, 1, 'n_eval=0'), (1, -1, 'n_train=-1'), (1.5, 1, 'n_eval=1.5')])
def test_bad_eval_counts_name_the_value(n_eval, n_train, message):
    with pytest.raises(ValueError, match=message):
        data_source('harm-world').eval_prompts(n_eval, n_train)


def test_data_files_only_for_hub_sources():
    with pytest.raises(ValueError, match=r"data_files='x\.jsonl'"):
        data_source('harm-world', data_files='x.jsonl')


# --- truncation edge cases -------------------------------------------------------------------------------

def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)['input_ids']


LONG = "\n\nHuman: tell me about basil and soil and roots" * 30 + "\n\nAssistant:"


def test_short_prompt_is_unchanged(tokenizer):
    p = 'How do I keep my basil healthy?'
    assert encode_prompt(tokenizer, p, 64) == _ids(tokenizer, format_prompt(p))


@pytest.mark.parametrize('mode, part', [('keep_end', slice(-20, None)), ('keep_start', slice(None, 20))])
def test_long_prompt_keeps_the_chosen_end(tokenizer, mode, part):
    full = _ids(tokenizer, LONG)
    assert len(full) > 40
    assert encode_prompt(tokenizer, LONG, 20, mode) == full[part]


def test_prompt_exactly_at_budget_is_not_cut(tokenizer):
    full = _ids(tokenizer, LONG)
    assert encode_prompt(tokenizer, LONG, len(full), 'keep_start') == full
    assert encode_prompt(tokenizer, LONG, len(full) - 1) == full[1:]


@pytest.mark.parametrize('max_length', [2, 3, 16, 17, 64])
def test_over_long_rows_never_raise_and_fit(tokenizer, max_length):
    rows = [('How?', 'Water it.'), (LONG, 'Water it. ' * 50), (LONG, ''), ('x' * 500, 'ok')]
    for p, r in rows:
        e = encode_example(tokenizer, p, r, max_length=max_length, allow_empty=True)
        assert set(e) == {'input_ids', 'labels'}
        assert len(e['input_ids']) == len(e['labels']) <= max_length
        assert 1 <= sum(l != -100 for l in e['labels'])          # at least one scored token
        assert e['labels'].count(-100) <= max_length // 2        # the default prompt budget


def test_response_cut_loses_eos_and_fit_keeps_it(tokenizer):
    p, r = 'How?', 'Water the roots when the soil is dry.'
    p_ids, r_ids = _ids(tokenizer, format_prompt(p)), _ids(tokenizer, ' ' + r)
    n = len(p_ids) + len(r_ids) + 1
    fit = encode_example(tokenizer, p, r, max_length=n, max_prompt_length=len(p_ids))
    assert fit['input_ids'] == p_ids + r_ids + [tokenizer.eos_token_id]
    cut = encode_example(tokenizer, p, r, max_length=n - 1, max_prompt_length=len(p_ids))
    assert cut['input_ids'] == p_ids + r_ids


@pytest.mark.parametrize('kwargs, message', [
    (dict(max_length=16, max_prompt_length=16), 'max_prompt_length=16'),
    (dict(max_length=16, max_prompt_length=20), 'max_prompt_length=20'),
    (dict(max_prompt_length=0), 'max_prompt_length=0'),
    (dict(max_prompt_length=2.5), 'max_prompt_length=2.5'),
    (dict(truncation_mode='keep_middle'), "truncation_mode='keep_middle'"),
    (dict(max_length=1), 'max_length=1'),
    (dict(max_length=0), 'max_length=0'),
])
def test_invalid_length_settings_name_the_value(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        encode_example(tokenizer, 'How?', 'Water it.', **kwargs)


def test_encode_prompt_rejects_bad_settings(tokenizer):
    with pytest.raises(ValueError, match="truncation_mode='left'"):
        encode_prompt(tokenizer, 'How?', 8, 'left')
    with pytest.raises(ValueError, match='max_prompt_length=0'):
        encode_prompt(tokenizer, 'How?', 0)


def test_truncation_stats_counts(tokenizer):
    prompts, responses = ['How?', LONG, 'How?', LONG], ['Water it.', 'Water it.', 'Water it. ' * 50, 'Water it. ' * 50]
    s = truncation_stats(tokenizer, prompts, responses, max_length=32)
    assert s == dict(rows=4, prompts_truncated=2, responses_truncated=2, max_length=32, max_prompt_length=16)
    assert truncation_stats(tokenizer, prompts[:1], responses[:1], max_length=256)['responses_truncated'] == 0
    with pytest.raises(ValueError, match='2 prompts but 1 responses'):
        truncation_stats(tokenizer, prompts[:2], responses[:1], max_length=32)
    with pytest.raises(ValueError, match='max_prompt_length=32'):
        truncation_stats(tokenizer, prompts, responses, max_length=32, max_prompt_length=32)


def test_a_file_with_a_byte_order_mark_reads_as_without(tmp_path):
    "Notepad and Excel write UTF-8 with a byte-order mark (EF BB BF): the rows are the same (before: 'Unexpected UTF-8 BOM')."
    from d2o_edu.harm_world import read_jsonl
    rows = [{'prompt': 'Caf\u00e9?', 'rejected': 'no'}, {'prompt': 'B?', 'rejected': 'x'}]
    text = ''.join(json.dumps(r) + '\n' for r in rows)
    (tmp_path / 'bom.jsonl').write_bytes(b'\xef\xbb\xbf' + text.encode())
    (tmp_path / 'plain.jsonl').write_bytes(text.encode())
    assert read_jsonl(tmp_path / 'bom.jsonl') == read_jsonl(tmp_path / 'plain.jsonl') == rows
