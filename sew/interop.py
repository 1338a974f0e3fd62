"""Hugging Face interop: read and write ``transformers`` SEW / SEW-D / wav2vec 2.0 directories.

Configs are translated field by field and weights key by key (``KEY_MAP``); nothing from
``transformers`` is imported, so loading works without it and without network access.
``*ForSequenceClassification`` directories load as a ``SequenceClassifier`` (the base model's
weights under ``encoder.``, ``layer_weights`` / ``projector`` / ``classifier`` as they are), and
``export_hf`` writes a classifier as one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from sew.files import find_weights, load_checked, read_state_dict, save_tensors, write_json
from sew.models.classifier import ClassifierConfig, SequenceClassifier
from sew.models.config import EncoderConfig
from sew.models.encoder import SpeechEncoder

HF_MODEL_TYPES = {"sew": "sew", "sew-d": "sew-d", "sew_d": "sew-d", "wav2vec2": "wav2vec2"}
HF_PREFIXES = ("sew.", "sew_d.", "sew-d.", "wav2vec2.")
# Weights of HF heads we do not build (pretraining quantiser, classifiers): skipped on load.
IGNORED_HF_KEYS = ("quantizer.", "project_q.", "project_hid.", "projector.", "classifier.", "layer_weights")
# The head of *ForSequenceClassification: the same names in our SequenceClassifier.
HF_CLASSIFIER_KEYS = ("layer_weights", "projector.", "classifier.")
BASE_PREFIX = {"sew": "sew.", "sew-d": "sew_d.", "wav2vec2": "wav2vec2."}
HF_CLASS_NAME = {"sew": "SEW", "sew-d": "SEWD", "wav2vec2": "Wav2Vec2"}  # e.g. SEWDForCTC

_LAYER = "context.transformer.layers.{i}."
_W2V_LAYERS = [
    (_LAYER + "attention.{proj}.{p}", "encoder.layers.{i}.attention.{proj}.{p}"),
    (_LAYER + "attention_norm.{p}", "encoder.layers.{i}.layer_norm.{p}"),
    (_LAYER + "ffn.fc1.{p}", "encoder.layers.{i}.feed_forward.intermediate_dense.{p}"),
    (_LAYER + "ffn.fc2.{p}", "encoder.layers.{i}.feed_forward.output_dense.{p}"),
    (_LAYER + "ffn_norm.{p}", "encoder.layers.{i}.final_layer_norm.{p}"),
    ("context.norm.{p}", "encoder.layer_norm.{p}"),
]
_DEBERTA = "encoder.encoder.layer.{i}."
_SEWD_LAYERS = [
    (_LAYER + "attention.q_proj.{p}", _DEBERTA + "attention.self.query_proj.{p}"),
    (_LAYER + "attention.k_proj.{p}", _DEBERTA + "attention.self.key_proj.{p}"),
    (_LAYER + "attention.v_proj.{p}", _DEBERTA + "attention.self.value_proj.{p}"),
    (_LAYER + "attention.pos_q_proj.{p}", _DEBERTA + "attention.self.pos_query_proj.{p}"),
    (_LAYER + "attention.pos_k_proj.{p}", _DEBERTA + "attention.self.pos_key_proj.{p}"),
    (_LAYER + "attention.out_proj.{p}", _DEBERTA + "attention.output.dense.{p}"),
    (_LAYER + "attention_norm.{p}", _DEBERTA + "attention.output.LayerNorm.{p}"),
    (_LAYER + "ffn.fc1.{p}", _DEBERTA + "intermediate.dense.{p}"),
    (_LAYER + "ffn.fc2.{p}", _DEBERTA + "output.dense.{p}"),
    (_LAYER + "ffn_norm.{p}", _DEBERTA + "output.LayerNorm.{p}"),
    ("context.transformer.rel_embeddings.weight", "encoder.encoder.rel_embeddings.weight"),
    ("context.transformer.rel_norm.{p}", "encoder.encoder.LayerNorm.{p}"),
]
_COMMON = [
    ("mask_embedding", "masked_spec_embed"),
    ("feature_extractor.layers.{i}.conv.{p}", "feature_extractor.conv_layers.{i}.conv.{p}"),
    ("feature_extractor.layers.{i}.norm.{p}", "feature_extractor.conv_layers.{i}.layer_norm.{p}"),
    ("context.pos_conv.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("context.pos_conv.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("context.pos_conv.bias", "encoder.pos_conv_embed.conv.bias"),
    ("ctc_head.proj.{p}", "lm_head.{p}"),
]
_SQUEEZE = [
    ("feature_norm.{p}", "layer_norm.{p}"),
    ("feature_projection.{p}", "feature_projection.{p}"),
    ("context.upsample.proj.{p}", "encoder.upsample.projection.{p}"),
]
KEY_MAP = {
    "sew": _COMMON + _SQUEEZE + _W2V_LAYERS,
    "sew-d": _COMMON + _SQUEEZE + _SEWD_LAYERS,
    "wav2vec2": _COMMON + _W2V_LAYERS + [
        ("feature_norm.{p}", "feature_projection.layer_norm.{p}"),
        ("feature_projection.{p}", "feature_projection.projection.{p}"),
    ],
}
_SLOTS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)", "proj": r"(?P<proj>[qkv]_proj|out_proj)"}


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if n % 2 == 0 else _SLOTS[part] for n, part in enumerate(parts))
    return re.compile(regex + "$")


def rename_keys(keys, family: str, to_hf: bool) -> dict[str, str]:
    """Map each key to its name on the other side; raise naming the keys that have none."""
    pairs = [(hf, ours) if not to_hf else (ours, hf) for ours, hf in KEY_MAP[family]]
    rules = [(_compile(src), dst) for src, dst in pairs]
    out, unknown = {}, []
    for key in keys:
        for pattern, template in rules:
            m = pattern.match(key)
            if m:
                out[key] = template.format(**m.groupdict())
                break
        else:
            unknown.append(key)
    if unknown:
        side = "our" if to_hf else "Hugging Face"
        raise ValueError(f"no {family} mapping for {side} weights: {', '.join(unknown[:8])}")
    return out


# -- configs ------------------------------------------------------------------------------
def config_from_hf(hf: dict[str, Any], source: str = "config.json") -> EncoderConfig:
    """Translate a ``transformers`` config dict into an ``EncoderConfig``."""
    model_type = hf.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(f"{source}: model_type {model_type!r} is not supported; "
                         f"supported: {', '.join(sorted(set(HF_MODEL_TYPES)))}")
    family = HF_MODEL_TYPES[model_type]
    for act_field in ("hidden_act", "feat_extract_activation"):
        if hf.get(act_field, "gelu") not in ("gelu", "gelu_python"):
            raise ValueError(f"{source}: {act_field}={hf[act_field]!r} is not supported (only exact GELU)")
    if hf.get("add_adapter"):
        raise ValueError(f"{source}: wav2vec2 adapters (add_adapter=true) are not supported")
    conv = list(zip(hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"]))
    eps = hf.get("layer_norm_eps", 1e-5)
    fields: dict[str, Any] = dict(
        family=family, conv_layers=conv, conv_norm=hf.get("feat_extract_norm", "group"),
        conv_bias=hf.get("conv_bias", False), hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"], layer_norm_eps=eps, feature_layer_norm_eps=eps,
        pos_conv_kernel=hf.get("num_conv_pos_embeddings", 128), pos_conv_groups=hf.get("num_conv_pos_embedding_groups", 16),
        feature_dropout=hf.get("feat_proj_dropout", 0.0), hidden_dropout=hf.get("hidden_dropout", 0.1),
        attention_dropout=hf.get("attention_dropout", 0.1), activation_dropout=hf.get("activation_dropout", 0.1),
        layerdrop=hf.get("layerdrop", 0.0), final_dropout=hf.get("final_dropout", 0.0),
    )
    if family == "wav2vec2":
        fields.update(layer_norm_first=bool(hf.get("do_stable_layer_norm", False)), squeeze_factor=1)
    else:
        fields["squeeze_factor"] = hf.get("squeeze_factor", 2)
    if family == "sew-d":
        if not hf.get("relative_attention", True):
            raise ValueError(f"{source}: SEW-D with relative_attention=false is not supported")
        pos_att = hf.get("pos_att_type", ["p2c", "c2p"]) or []
        if isinstance(pos_att, str):
            pos_att = [t.strip() for t in pos_att.lower().split("|") if t.strip()]
        max_rel = hf.get("max_relative_positions", -1)
        if max_rel < 1:
            max_rel = hf.get("max_position_embeddings", 512)
        fields.update(
            position_buckets=hf.get("position_buckets", 256), max_relative_positions=max_rel,
            share_att_key=hf.get("share_att_key", True), pos_att_type=list(pos_att),
            norm_rel_embeddings="layer_norm" in str(hf.get("norm_rel_ebd", "layer_norm")),
            feature_layer_norm_eps=hf.get("feature_layer_norm_eps", 1e-5),
            head_size=hf.get("attention_head_size"),
        )
    return EncoderConfig(**fields)


def config_to_hf(cfg: EncoderConfig) -> dict[str, Any]:
    """Translate an ``EncoderConfig`` into the dict of a ``transformers`` config.json."""
    base = HF_CLASS_NAME[cfg.family]
    out: dict[str, Any] = {
        "model_type": cfg.family,
        "architectures": [f"{base}ForCTC" if cfg.vocab_size else f"{base}Model"],
        "conv_dim": [c for c, _, _ in cfg.conv_layers],
        "conv_kernel": [k for _, k, _ in cfg.conv_layers],
        "conv_stride": [s for _, _, s in cfg.conv_layers],
        "conv_bias": cfg.conv_bias, "feat_extract_norm": cfg.conv_norm, "feat_extract_activation": "gelu",
        "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.intermediate_size,
        "hidden_act": "gelu_python" if cfg.family == "sew-d" else "gelu", "layer_norm_eps": cfg.layer_norm_eps,
        "num_conv_pos_embeddings": cfg.pos_conv_kernel, "num_conv_pos_embedding_groups": cfg.pos_conv_groups,
        "feat_proj_dropout": cfg.feature_dropout, "hidden_dropout": cfg.hidden_dropout,
        "attention_dropout": cfg.attention_dropout, "activation_dropout": cfg.activation_dropout,
        "final_dropout": cfg.final_dropout, "layerdrop": cfg.layerdrop,
        "vocab_size": cfg.vocab_size or 32, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "mask_time_prob": 0.05, "ctc_loss_reduction": "mean", "ctc_zero_infinity": True,
    }
    if cfg.family == "wav2vec2":
        out["do_stable_layer_norm"] = cfg.layer_norm_first
    else:
        out["squeeze_factor"] = cfg.squeeze_factor
    if cfg.family == "sew-d":
        out.update(
            position_buckets=cfg.position_buckets, max_position_embeddings=cfg.max_relative_positions,
            max_relative_positions=cfg.max_relative_positions, share_att_key=cfg.share_att_key,
            relative_attention=True, pos_att_type=list(cfg.pos_att_type),
            norm_rel_ebd="layer_norm" if cfg.norm_rel_embeddings else "none",
            feature_layer_norm_eps=cfg.feature_layer_norm_eps,
        )
        if cfg.head_size:
            out["attention_head_size"] = cfg.head_size
    elif cfg.feature_layer_norm_eps != cfg.layer_norm_eps:
        raise ValueError(f"a {cfg.family} config.json has one layer_norm_eps; this model uses "
                         f"{cfg.feature_layer_norm_eps} for features and {cfg.layer_norm_eps} for layers")
    return out


# -- weights ------------------------------------------------------------------------------
def state_dict_from_hf(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """HF weights (any prefix, either weight-norm key style) -> our names."""
    clean = {}
    for key, value in state.items():
        for prefix in HF_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.startswith(IGNORED_HF_KEYS):
            continue
        key = key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        key = key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        clean[key] = value
    names = rename_keys(clean, family, to_hf=False)
    return {names[k]: v for k, v in clean.items()}


def state_dict_to_hf(state: dict[str, torch.Tensor], family: str, with_head: bool) -> dict[str, torch.Tensor]:
    """Our weights -> HF names (with the base-model prefix when there is a CTC head)."""
    names = rename_keys(state, family, to_hf=True)
    prefix = BASE_PREFIX[family] if with_head else ""
    return {(v if v.startswith("lm_head.") else prefix + v): state[k] for k, v in names.items()}


def is_classification(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> bool:
    """A ``*ForSequenceClassification`` directory: by its architectures, else by its classifier weights."""
    architectures = hf.get("architectures") or []
    if architectures:
        return any("ForSequenceClassification" in str(a) for a in architectures)
    return "classifier.weight" in state


def classifier_config_from_hf(hf: dict[str, Any], head: dict[str, torch.Tensor],
                              source: str = "config.json") -> ClassifierConfig:
    """The head of a ``*ForSequenceClassification`` config: labels from ``id2label`` ordered by id."""
    num_labels = head["classifier.weight"].shape[0] if "classifier.weight" in head else None
    id2label = hf.get("id2label") or {}
    if id2label:
        try:
            by_id = {int(k): str(v) for k, v in id2label.items()}
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: id2label keys must be class ids 0..n-1, found {sorted(id2label)}") from err
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{source}: id2label keys must be class ids 0..n-1, found {sorted(by_id)}")
        labels = [by_id[i] for i in range(len(by_id))]
        if num_labels is not None and len(labels) != num_labels:
            raise ValueError(f"{source}: id2label names {len(labels)} labels but the classifier weights "
                             f"have {num_labels} outputs")
    else:
        n = num_labels if num_labels is not None else int(hf.get("num_labels", 2))
        labels = [f"LABEL_{i}" for i in range(n)]
    try:
        return ClassifierConfig(labels=labels, use_weighted_layer_sum=bool(hf.get("use_weighted_layer_sum", False)),
                                proj_size=int(hf.get("classifier_proj_size", 256)))
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err


def load_hf_directory(directory: Path):
    """A ``SpeechEncoder`` from a ``transformers`` model directory (config.json + weights), or a
    ``SequenceClassifier`` from a ``*ForSequenceClassification`` one."""
    source = directory / "config.json"
    hf = json.loads(source.read_text())
    config = config_from_hf(hf, str(source))
    weights = find_weights(directory)
    if weights is None:
        raise ValueError(f"{directory}: config.json found but no model.safetensors or pytorch_model.bin")
    raw = read_state_dict(weights)
    head: dict[str, torch.Tensor] | None = None
    if is_classification(hf, raw):
        head = {k: v for k, v in raw.items() if k.startswith(HF_CLASSIFIER_KEYS)}
        raw = {k: v for k, v in raw.items() if k not in head}
    state = state_dict_from_hf(raw, config.family)
    if "ctc_head.proj.weight" in state:
        config = config.replace(vocab_size=state["ctc_head.proj.weight"].shape[0])
    if (directory / "preprocessor_config.json").is_file():
        pre = json.loads((directory / "preprocessor_config.json").read_text())
        config = config.replace(normalize_waveform=bool(pre.get("do_normalize", False)))
    if head is None:
        model = encoder = SpeechEncoder(config)
    else:
        model = SequenceClassifier(config, classifier_config_from_hf(hf, head, str(source)))
        encoder = model.encoder
    if "mask_embedding" not in state:  # HF omits it when SpecAugment was off; keep our init
        state["mask_embedding"] = encoder.mask_embedding.detach().clone()
    if head is not None:
        state = {**{"encoder." + k: v for k, v in state.items()}, **head}
    load_checked(model, state, str(weights))
    return model


def export_hf(model, path: str | Path, vocab=None) -> Path:
    """Write ``model`` as a ``transformers`` directory that ``AutoModel``/``AutoModelForCTC`` load,
    or, for a ``SequenceClassifier``, ``AutoModelForAudioClassification``.

    With ``vocab`` (a ``sew.data.text.Vocabulary``, or a vocab.json path or its directory) the
    tokenizer files are written too, so ``Wav2Vec2Processor.from_pretrained`` loads the directory.
    """
    path = Path(path)
    cfg = model.config
    if isinstance(model, SequenceClassifier):
        if vocab is not None:
            raise ValueError("export_hf: a classifier has no CTC vocabulary; pass vocab=None")
        if model.head_config.pooling != "mean":
            raise ValueError(f"export_hf: transformers' classification head pools by the mean only; this "
                             f"classifier pools by {model.head_config.pooling!r} (head.pooling): keep it in "
                             f"sew's format (save_pretrained) or train it with head.pooling=mean")
        hf_config = classifier_config_to_hf(model)
        tensors = state_dict_to_hf(model.encoder.state_dict(), cfg.family, with_head=True)
        tensors.update({k: v for k, v in model.state_dict().items() if k.startswith(HF_CLASSIFIER_KEYS)})
    else:
        hf_config = config_to_hf(cfg)
        tensors = state_dict_to_hf(model.state_dict(), cfg.family, with_head=cfg.vocab_size is not None)
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "config.json", hf_config)
    save_tensors(path / "model.safetensors", tensors, metadata={"format": "pt"})
    write_json(path / "preprocessor_config.json", {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
        "padding_value": 0.0, "do_normalize": cfg.normalize_waveform,
        "return_attention_mask": cfg.conv_norm == "layer",
        **({"processor_class": "Wav2Vec2Processor"} if vocab is not None else {}),
    })
    if vocab is not None:
        write_tokenizer(path, vocab, cfg.vocab_size)
    return path


def classifier_config_to_hf(model: SequenceClassifier) -> dict[str, Any]:
    """The config.json of a ``*ForSequenceClassification`` for ``model``."""
    out = config_to_hf(model.config)
    base = HF_CLASS_NAME[model.config.family]
    labels, head = model.labels, model.head_config
    out.update(
        architectures=[f"{base}ForSequenceClassification"], num_labels=len(labels),
        id2label={str(i): label for i, label in enumerate(labels)},
        label2id={label: i for i, label in enumerate(labels)},
        use_weighted_layer_sum=head.use_weighted_layer_sum, classifier_proj_size=head.proj_size,
    )
    return out


def write_tokenizer(path: Path, vocab, vocab_size: int | None) -> None:
    """vocab.json + tokenizer_config.json + special_tokens_map.json for ``Wav2Vec2CTCTokenizer``."""
    from sew.data.text import BOS, EOS, PAD, UNK, WORD_DELIMITER, Vocabulary

    if not isinstance(vocab, Vocabulary):
        vocab = Vocabulary.load(vocab)
    if vocab_size is not None and len(vocab) != vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} symbols but the model's CTC head has {vocab_size}")
    vocab.save(path)
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD}
    write_json(path / "special_tokens_map.json", special)
    write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "Wav2Vec2CTCTokenizer", "processor_class": "Wav2Vec2Processor",
        "word_delimiter_token": WORD_DELIMITER, "do_lower_case": False, "replace_word_delimiter_char": " ", **special,
    })
