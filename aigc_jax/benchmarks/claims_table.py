"""The rows of README's measured table: the command behind each figure, how far a rerun may land
from the documented value, and the trivial baseline printed beside it.

Tolerances are what a rerun on another x86 CPU (another XLA build, other float rounding) may move
a figure by: deterministic families (the n-gram counts) barely move; language-model bits per byte
and accuracies move in the second or third decimal; GAN Fréchet distances move by tens of percent
when one early step rounds differently, so they get a relative band. `at_least` is a bound a figure
must reach whatever was documented (CartPole counts as solved at a return of 475).

`python -m benchmarks.claims` (benchmarks/claims.py) runs these; README's table is written from
their results (docs/claims.json).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    metric: str  # a key of the run's last evaluation row in metrics.jsonl, e.g. "eval_bpb"
    tolerance: float  # |measured - documented| allowed: absolute, or a fraction of documented if relative
    relative: bool = False
    run: str = ""  # which run of the claim ("" = its first)
    at_least: float | None = None
    digits: int = 3  # significant digits printed


@dataclass(frozen=True)
class Claim:
    name: str
    runs: tuple[tuple[str, str], ...]  # (run name, `python -m train` arguments; {NAME} = run NAME's workdir)
    figures: tuple[Figure, ...]  # the first is the headline
    baseline: str = ""  # a key of benchmarks.claims.BASELINES, measured beside the headline figure
    note: str = ""  # context without numbers: every number in the table is measured

    def run_names(self) -> list[str]:
        return [name for name, _ in self.runs]


@dataclass(frozen=True)
class Relation:
    """Measured figures in increasing order: `python -m train gpt` beats lstm_lm, and so on."""
    figures: tuple[str, ...]  # "claim.run.metric", smallest first
    why: str = field(default="")


def one(family: str, *figures: Figure, args: str = "", **kw) -> Claim:
    return Claim(family, ((family, f"{family} {args}".strip()),), figures, **kw)


BPB = 0.02
ACC = 0.01

CLAIMS: tuple[Claim, ...] = (
    one("cnn", Figure("eval_accuracy", ACC), baseline="majority_class",
        note="360 held-out digits; baseline: always the train split's most common digit"),
    one("mlp_gan", Figure("eval_fd", 0.3, relative=True, digits=4), Figure("eval_diversity", 0.15),
        Figure("eval_pixel_fd", 0.5, relative=True), baseline="init",
        note="grid of digits in samples/; baseline: the same generator at its initial weights"),
    one("dcgan", Figure("eval_fd", 0.3, relative=True), Figure("eval_diversity", 0.15), baseline="init",
        note="BatchNorm in G and D; baseline: the generator at its initial weights"),
    one("stylegan", Figure("eval_fd", 0.3, relative=True), Figure("eval_diversity", 0.15), baseline="init"),
    one("vae", Figure("eval_fd", 0.3, relative=True), Figure("eval_elbo", 3.0, digits=4), baseline="init"),
    one("vae_gan", Figure("eval_fd", 0.3, relative=True), Figure("eval_diversity", 0.15), baseline="init",
        note="reconstruction in D's features: a lower FD than the plain vae's"),
    one("conv_vae", Figure("eval_fd", 0.3, relative=True), Figure("eval_elbo", 3.0, digits=4), baseline="init"),
    one("ddpm", Figure("eval_fd", 0.3, relative=True), Figure("eval_prompt_accuracy", 0.05),
        Figure("eval_diversity", 0.15), baseline="init",
        note="DPM-Solver++(2M) SDE, 50 steps, guidance 2; eval_prompt_accuracy: the judge reads the prompted digit in guided samples"),
    one("cyclegan", Figure("eval_class_kept_ab", 0.03), Figure("eval_class_kept_ba", 0.06),
        Figure("eval_fd_ab", 0.3, relative=True), Figure("eval_fd_ba", 0.3, relative=True),
        Figure("eval_fd_identity", 0.01, relative=True), Figure("eval_judge_accuracy_b", 0.01),
        note="hand -> printed and back; eval_fd_ab/ba: FD to the target domain's real test images; "
             "eval_fd_identity: the same FD for an identity translator (the trivial baseline; it keeps "
             "every class by construction); eval_judge_accuracy_b: how well the judge reads real printed digits"),
    one("autoencoder", Figure("eval_probe_accuracy", ACC), Figure("eval_mse", 0.2, relative=True, digits=2),
        baseline="init", note="linear probe on the codes; baseline: the same network at its initial weights"),
    one("simclr", Figure("eval_probe_accuracy", ACC), baseline="init",
        note="linear probe on the encoder; baseline: the same encoder at its initial weights"),
    one("multimodal", Figure("eval_match_accuracy", ACC), baseline="init"),
    one("clip", Figure("eval_zero_shot_accuracy", 0.015), Figure("eval_recall_at_1", 0.015), baseline="init",
        note="zero-shot from a prompt never trained on"),
    one("word2vec", Figure("eval_cooccur_minus_random", 0.01), baseline="init", note="on the held-out pages"),
    one("transformer", Figure("eval_exact_match", 0.005, digits=4), Figure("eval_beam_exact_match", 0.005, digits=4),
        baseline="init", note="numbers never seen in training; greedy, then beam decoding"),
    one("lstm_seq2seq", Figure("eval_exact_match", 0.005, digits=4), Figure("eval_beam_exact_match", 0.005, digits=4),
        baseline="init"),
    one("ngram", Figure("eval_bpb", 0.005, digits=4), baseline="unigram",
        note="order-3 Kneser-Ney; baseline for every language model: the train split's byte frequencies"),
    one("rnn_lm", Figure("eval_bpb", BPB, digits=4), baseline="unigram"),
    one("lstm_lm", Figure("eval_bpb", BPB, digits=4), baseline="unigram"),
    one("gpt", Figure("eval_bpb", BPB, digits=4), baseline="unigram",
        note="defaults chosen on the validation split; the test split is only reported"),
    Claim("mlm", (("mlm", "mlm"), ("finetune", "mlm_finetune --config.pretrained={mlm}"),
                  ("scratch", "mlm_finetune")),
          (Figure("eval_mlm_accuracy", ACC), Figure("eval_accuracy", 0.02, run="finetune"),
           Figure("eval_accuracy", 0.02, run="scratch")),
          baseline="most_frequent_byte",
          note="masked bytes of held-out pages (baseline: always the most frequent byte, a space); then a "
               "two-class classifier with 64 labels per class from the pretrained encoder and from scratch"),
    # RL rows: 8 agents (seeds) trained at once, their mean. One agent's return moves with float
    # rounding (REINFORCE seed 0 solved CartPole on one CPU and reached 154 on another, whose
    # matmul kernels round differently); the mean of 8 is what a rerun elsewhere reproduces.
    one("ppo", Figure("eval_return", 25.0, at_least=475.0, digits=3), Figure("eval_return_min", 50.0, digits=3),
        args="--config.num_seeds=8",
        note="mean and worst of 8 agents, each greedy over 100 episodes of CartPole-v1; solved at 475"),
    one("reinforce", Figure("eval_return", 40.0, at_least=400.0, digits=3), Figure("eval_return_min", 100.0, digits=3),
        args="--config.num_seeds=8", note="mean and worst of 8 agents; one agent alone ranges from failing to solved"),
)

RELATIONS: tuple[Relation, ...] = (
    Relation(("gpt.gpt.eval_bpb", "lstm_lm.lstm_lm.eval_bpb", "rnn_lm.rnn_lm.eval_bpb", "ngram.ngram.eval_bpb"),
             "held-out bits per byte: the GPT beats the LSTM, the LSTM the Elman RNN, the RNN the trigram"),
    Relation(("ddpm.ddpm.eval_fd", "dcgan.dcgan.eval_fd"), "the diffusion model's samples are closer to real digits "
             "than the DCGAN's"),
    Relation(("ddpm.ddpm.eval_fd", "stylegan.stylegan.eval_fd"), "the diffusion model's samples are closer to real digits "
             "than the StyleGAN's"),
    Relation(("vae_gan.vae_gan.eval_fd", "vae.vae.eval_fd"), "the VAE-GAN's samples are closer to real digits"),
    Relation(("mlm.scratch.eval_accuracy", "mlm.finetune.eval_accuracy"),
             "pretraining helps the few-label classifier"),
)


def by_name() -> dict[str, Claim]:
    return {claim.name: claim for claim in CLAIMS}
