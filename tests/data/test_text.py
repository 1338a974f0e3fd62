import json

import pytest

from sew.data.text import Vocabulary, from_letters, normalize_text, to_letters


@pytest.mark.parametrize("raw, expected", [
    ("Hello,   World!", "hello world"),
    ("Don’t STOP—now.", "don't stop now"),
    ("'Tis the  season' he said", "tis the season he said"),
    ("Straße ÉCOLE", "strasse école"),
    ("Привет, мир!", "привет мир"),
    ("नमस्ते दुनिया", "नमस्ते दुनिया"),  # Devanagari vowel signs are combining marks: kept
    ("a|b  (c) 42", "a b c 42"),
    ("  ", ""),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected  # idempotent


def test_letters_round_trip():
    assert to_letters("Ça va, bien") == "ç a | v a | b i e n |"
    assert from_letters(to_letters("Ça va, bien")) == "ça va bien"


def test_vocabulary_build_encode_decode():
    vocab = Vocabulary.build(["Über café", "naïve ÜBER"])
    assert vocab.tokens[:5] == ["<pad>", "<s>", "</s>", "<unk>", "|"]
    assert set(vocab.tokens[5:]) == set("übercaféfnaïv") and vocab.tokens[5:] == sorted(vocab.tokens[5:])
    ids = vocab.encode("Naïve café!")
    assert ids.count(vocab.delimiter_id) == 1 and vocab.unk_id not in ids
    assert vocab.decode(ids) == "naïve café"
    assert vocab.encode("x")[0] == vocab.unk_id and vocab.unknown_chars("xyz café") == {"x", "y", "z"}
    # greedy CTC: repeats merged, blanks removed
    c, a, f = (vocab.index[ch] for ch in "caf")
    assert vocab.decode([c, c, 0, a, a, 0, 0, f, f], ctc=True) == "caf"
    assert vocab.decode([c, -100, a]) == "ca"


def test_vocabulary_save_load(tmp_path):
    vocab = Vocabulary.build(["żółw і кіт"])
    path = vocab.save(tmp_path)
    assert json.loads(path.read_text(encoding="utf-8"))["<pad>"] == 0
    assert Vocabulary.load(tmp_path) == vocab == Vocabulary.load(path)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Vocabulary.load(tmp_path / "missing")


def test_vocab_json_loads_in_hf_tokenizer(tmp_path):
    import transformers

    vocab = Vocabulary.build(["Grüße aus Köln", "it's fine"])
    vocab.save(tmp_path)
    tok = transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                            word_delimiter_token="|")
    assert len(tok) == len(vocab) and tok.pad_token_id == vocab.pad_id == 0 and tok.unk_token_id == vocab.unk_id
    text = normalize_text("Grüße, it's Köln")
    assert tok(text).input_ids == vocab.encode(text)
    assert tok.decode(vocab.encode(text), group_tokens=False) == vocab.decode(vocab.encode(text)) == text
