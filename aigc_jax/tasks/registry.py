"""Family name -> Task class: the one list the trainer, the tests and the benchmarks iterate."""

from aigc_jax.errors import UserError
from aigc_jax.tasks.autoencoder import AutoencoderTask
from aigc_jax.tasks.classifier import CNNClassifier, MLPClassifier
from aigc_jax.tasks.clip import CLIPTask
from aigc_jax.tasks.conv_vae import ConvVAETask
from aigc_jax.tasks.cyclegan import CycleGANTask
from aigc_jax.tasks.dcgan import DCGANTask
from aigc_jax.tasks.gpt import GPTTask
from aigc_jax.tasks.lstm_seq2seq import LSTMSeq2SeqTask
from aigc_jax.tasks.mlm import MLMTask
from aigc_jax.tasks.mlm_finetune import MLMFinetuneTask
from aigc_jax.tasks.mlp_gan import MLPGAN
from aigc_jax.tasks.multimodal import MultimodalTask
from aigc_jax.tasks.ngram import NGramTask
from aigc_jax.tasks.ppo import PPOTask
from aigc_jax.tasks.reinforce import ReinforceTask
from aigc_jax.tasks.rnn_lm import LSTMLMTask, RNNLMTask
from aigc_jax.tasks.simclr import SimCLRTask
from aigc_jax.tasks.stylegan import StyleGANTask
from aigc_jax.tasks.transformer import TransformerTask
from aigc_jax.tasks.vae import VAETask
from aigc_jax.tasks.vae_gan import VAEGANTask
from aigc_jax.tasks.word2vec import Word2VecTask

FAMILIES = {task.name: task for task in (MLPClassifier, CNNClassifier, MLPGAN, VAETask, DCGANTask,
                                         LSTMSeq2SeqTask, TransformerTask, RNNLMTask, LSTMLMTask, NGramTask, GPTTask, PPOTask, ReinforceTask,
                                         StyleGANTask, SimCLRTask, MultimodalTask, CLIPTask, Word2VecTask,
                                         AutoencoderTask, ConvVAETask, VAEGANTask, MLMTask, MLMFinetuneTask,
                                         CycleGANTask)}


def get(name: str):
    if name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]
