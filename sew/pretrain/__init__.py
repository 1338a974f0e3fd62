"""Pretraining: the wav2vec 2.0 contrastive objective with SEW's MLP heads, or BEST-RQ.

* ``sew.pretrain.objective``: ``PretrainingModel`` (encoder + quantiser + heads -> loss sums),
  ``contrastive_logits``, ``make_pretraining_model`` (the class of ``objective.kind``), ``load_pretraining_model``;
* ``sew.pretrain.bestrq``: ``BestRQModel`` (encoder + frozen random-projection quantiser of log-mel
  frames + Linear head -> cross-entropy sums), ``objective.kind: bestrq``;
* ``sew.pretrain.quantizer``: ``GumbelVectorQuantizer``, ``gumbel_temperature``;
* ``sew.pretrain.heads``: ``MLPHead`` (fp32 BatchNorm), ``build_head``;
* ``sew.pretrain.negatives``: ``sample_negatives``;
* ``sew.pretrain.config``: ``ObjectiveConfig`` (the recipe's numbers);
* ``sew.pretrain.interop``: ``load_hf_pretraining`` (transformers' ``Wav2Vec2ForPreTraining``);
* ``sew.pretrain.task``, ``recipe``, ``run``: the ``sew pretrain`` trainer on ``sew.train``.
"""

from __future__ import annotations

from sew.pretrain.config import ObjectiveConfig
from sew.pretrain.bestrq import BestRQModel
from sew.pretrain.build import load_pretraining_model, make_pretraining_model
from sew.pretrain.objective import PretrainingModel, PretrainOutput

__all__ = ["BestRQModel", "ObjectiveConfig", "PretrainOutput", "PretrainingModel", "load_pretraining_model",
           "make_pretraining_model"]
