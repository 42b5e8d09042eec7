"""Family name -> Task class: the one list the trainer, the tests and the benchmarks iterate."""

from aigc_jax.errors import UserError
from aigc_jax.tasks.classifier import CNNClassifier, MLPClassifier
from aigc_jax.tasks.gpt import GPTTask
from aigc_jax.tasks.lstm_seq2seq import LSTMSeq2SeqTask
from aigc_jax.tasks.mlp_gan import MLPGAN
from aigc_jax.tasks.ngram import NGramTask
from aigc_jax.tasks.ppo import PPOTask
from aigc_jax.tasks.reinforce import ReinforceTask
from aigc_jax.tasks.rnn_lm import LSTMLMTask, RNNLMTask
from aigc_jax.tasks.transformer import TransformerTask
from aigc_jax.tasks.vae import VAETask

FAMILIES = {task.name: task for task in (MLPClassifier, CNNClassifier, MLPGAN, VAETask,
                                         LSTMSeq2SeqTask, TransformerTask, RNNLMTask, LSTMLMTask, NGramTask, GPTTask, PPOTask, ReinforceTask)}


def get(name: str):
    if name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]
