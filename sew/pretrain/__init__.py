"""Pretraining: the wav2vec 2.0 contrastive objective with SEW's MLP heads.

* ``sew.pretrain.objective``: ``PretrainingModel`` (encoder + quantiser + heads -> loss sums),
  ``contrastive_logits``, ``load_pretraining_model``;
* ``sew.pretrain.quantizer``: ``GumbelVectorQuantizer``, ``gumbel_temperature``;
* ``sew.pretrain.heads``: ``MLPHead`` (fp32 BatchNorm), ``build_head``;
* ``sew.pretrain.negatives``: ``sample_negatives``;
* ``sew.pretrain.config``: ``ObjectiveConfig`` (the recipe's numbers);
* ``sew.pretrain.interop``: ``load_hf_pretraining`` (transformers' ``Wav2Vec2ForPreTraining``);
* ``sew.pretrain.task``, ``recipe``, ``run``: the ``sew pretrain`` trainer on ``sew.train``.
"""

from __future__ import annotations

from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.objective import PretrainingModel, PretrainOutput, load_pretraining_model

__all__ = ["ObjectiveConfig", "PretrainOutput", "PretrainingModel", "load_pretraining_model"]
