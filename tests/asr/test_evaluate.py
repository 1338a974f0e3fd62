import json

import torch

import sew
from sew.checkpoint import save_model
from sew.asr.decode import GreedyDecoder
from sew.asr.evaluate import eval_dataset, evaluate
from sew.cli import main
from sew.data.corpus import read_corpus


def test_padded_and_unpadded_batches_give_identical_hypotheses(make_model, tiny_corpus, vocab):
    model = make_model(seed=3)
    data, refs = eval_dataset(read_corpus(tiny_corpus, split="test"))
    batched = evaluate(model, data, refs, GreedyDecoder(vocab), max_tokens=16000 * 60)
    alone = evaluate(model, data, refs, GreedyDecoder(vocab), max_tokens=1)  # one utterance per batch
    assert len(batched.rows) == len(data) >= 3
    assert [r["hypothesis"] for r in batched.rows] == [r["hypothesis"] for r in alone.rows]
    assert any(r["hypothesis"] for r in batched.rows)  # not trivially empty
    assert batched.summary["wer"] == alone.summary["wer"] and batched.summary["utterances"] == len(data)


def test_hf_format_fine_tuned_checkpoint_evaluates_through_sew_eval(tmp_path, make_model, tiny_corpus, vocab, capsys):
    model = make_model(seed=4)
    ours, hf = tmp_path / "ours", tmp_path / "hf"
    save_model(model, ours)
    vocab.save(ours)
    sew.export_hf(model, hf, vocab=vocab)
    assert {"vocab.json", "tokenizer_config.json", "preprocessor_config.json"} <= {p.name for p in hf.iterdir()}
    for d in (ours, hf):
        assert main(["eval", "--model", str(d), "--data", str(tiny_corpus), "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert "WER %" in out and "CER %" in out
    a = json.loads((ours / "eval-dev/metrics.json").read_text())
    b = json.loads((hf / "eval-dev/metrics.json").read_text())
    assert a["wer"] == b["wer"] and a["cer"] == b["cer"] and a["utterances"] == b["utterances"]
    rows = (hf / "eval-dev/utterances.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["id", "reference", "hypothesis"] and len(rows) == a["utterances"] + 1


def test_transformers_processor_and_model_transcribe_an_export(tmp_path, make_model, vocab):
    import transformers

    model = make_model(seed=5).eval()
    sew.export_hf(model, tmp_path, vocab=vocab)
    processor = transformers.Wav2Vec2Processor.from_pretrained(tmp_path)
    hf_model = transformers.AutoModelForCTC.from_pretrained(tmp_path).eval()
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        logits = hf_model(**processor(wave.numpy(), sampling_rate=16000, return_tensors="pt")).logits
        ours = model(wave[None]).logits
    torch.testing.assert_close(logits, ours, atol=1e-4, rtol=1e-4)
    # a random head emits <s> too; both sides drop the special tokens
    assert processor.batch_decode(logits.argmax(-1), skip_special_tokens=True) == GreedyDecoder(vocab)(ours)


def test_eval_errors_are_clear(tmp_path, make_model, tiny_corpus, capsys):
    model = make_model()
    save_model(model, tmp_path)  # no vocab.json
    assert main(["eval", "--model", str(tmp_path), "--data", str(tiny_corpus)]) == 2
    assert "no vocab.json" in capsys.readouterr().err
