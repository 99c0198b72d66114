"""Small user-facing paths that had no test: the report's note on a negative KL estimate, `--only` run outside the
repository (it must name `--from`), and the progress bar of the trainer's anchor sampling."""
import pytest


def _metrics(kl):
    sft = {'harm_rate': 0.3, 'helpfulness': 0.5, 'distinct_2': 0.8, 'kl_to_sft': 0.0}
    return {'sft': sft, 'aligned': {**sft, 'harm_rate': 0.1, 'kl_to_sft': kl, 'kl_to_sft_se': 0.02},
            'config': {'method': 'd2o'}}


@pytest.mark.parametrize('kl, noted', [(-0.013, True), (0.4, False)])
def test_report_explains_a_negative_kl_estimate(kl, noted):
    "A KL below 0 (a Monte-Carlo estimate ± its SE) gets the note; no ratio over SFT's KL of 0 is printed as nan."
    from d2o_edu.pipeline import report_html
    sample = {'prompt': 'p', 'response': 'r', 'harm_score': 0.0, 'harmful': False, 'helpfulness': 0.5}
    page = report_html(_metrics(kl), [{'step': 1, 'loss': 0.69}], [sample], [sample])
    assert ('below 0 only by sampling noise' in page) is noted
    table = page[page.index('<h2>SFT vs aligned</h2>'):].split('</table>')[0]
    row = table[table.index('<td>kl_to_sft</td>'):].split('</tr>')[0]
    assert f'{kl:.3f} ± 0.020' in row and row.endswith('<td>—</td>') and 'nan' not in table.lower()


@pytest.mark.parametrize('command', ['study', 'study2'])
def test_only_with_a_missing_from_file_names_from(tmp_path, capsys, command):
    "`--only JOB --from FILE` with no such FILE: the one-line error names the file and says to pass it with --from."
    from d2o_edu.cli import main
    with pytest.raises(SystemExit) as e:
        main([command, '--only', 'some-job', '--from', str(tmp_path / 'gone.json'), '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert f'{tmp_path / "gone.json"} not found' in err and '(--from)' in err, err


def test_trainer_shows_a_progress_bar_while_it_samples_anchors(tmp_path, capfd):
    "`disable_tqdm=False`: the anchor sampling shows tqdm's bar (on stderr); `disable_tqdm=True`: nothing."
    from d2o_edu.harm_world import load_harm_world
    from d2o_edu.models import load_model
    from d2o_edu.trainer import D2OTrainer, D2OConfig
    model, tok = load_model('tiny-gpt2')
    rows = [{'prompt': r['prompt'], 'rejected': r['rejected']} for r in load_harm_world('negatives').select(range(4))]
    for quiet in (False, True):
        D2OTrainer(model, args=D2OConfig(output_dir=str(tmp_path / str(quiet)), K=2, max_new_tokens=4, use_cpu=True,
                                         disable_tqdm=quiet, generation_batch_size=2),
                   train_dataset=rows, processing_class=tok)
        err = capfd.readouterr().err
        assert ('generating' in err and '2/2' in err) is not quiet, err[-500:]


def test_resume_with_nothing_to_resume_says_it_starts_afresh(tmp_path, capsys):
    "A --resume into an empty or new folder (a typo in --out, say) trains from step 0, and says so."
    from d2o_edu.pipeline import PipelineConfig, prepare_run_dir
    prepare_run_dir(PipelineConfig(), tmp_path / 'new', resume=True, progress=True)
    assert f"--resume: nothing to resume in {tmp_path / 'new'} (no run.json): starting from step 0" in capsys.readouterr().err
    assert (tmp_path / 'new' / 'run.json').exists()
