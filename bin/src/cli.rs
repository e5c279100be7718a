//! Command-line interface: `train`, `lr-find`, `eval`, `predict`, `download`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "finetune-imdb",
    version,
    about = "Fine-tune a BiLSTM (GloVe) or MiniLM (BERT) on IMDB sentiment"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train on the train split (minus a validation split), evaluate on test.
    Train(Box<TrainArgs>),
    /// Learning-rate range test: train a few hundred steps at an exponentially rising
    /// rate, suggest a rate and draw loss against rate (`--out`/lr-find.svg).
    LrFind(Box<LrFindArgs>),
    /// Evaluate a checkpoint on a data set (aclImdb dir/archive, or a folder with pos/ and neg/).
    Eval(EvalArgs),
    /// Print the probability that each text is positive.
    Predict(PredictArgs),
    /// Fetch the IMDB archive and the MiniLM model files into a cache folder.
    ///
    /// Each file is checked by its content; one already in the cache is reused when it passes.
    Download(DownloadArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The tutorial's embedding → 2-layer BiLSTM → linear classifier.
    Bilstm,
    /// A pretrained BERT-family encoder with a sequence-classification head.
    Bert,
}

/// `--precision`: the arithmetic of the transformer's linear layers and attention (see
/// `tapegrad_autograd::precision`).
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionKind {
    /// f32 operands and sums.
    #[default]
    F32,
    /// bf16 mixed precision: products of bf16-rounded operands summed in f32; weights,
    /// gradients and the optimizer stay f32.
    Bf16,
}

impl From<PrecisionKind> for tapegrad_autograd::Precision {
    fn from(p: PrecisionKind) -> Self {
        match p {
            PrecisionKind::F32 => tapegrad_autograd::Precision::F32,
            PrecisionKind::Bf16 => tapegrad_autograd::Precision::Bf16,
        }
    }
}

/// `--device`: `cpu`, `cuda`, `cuda:N` or `sim` (the simulated GPU), checked by [`tapegrad_autograd::Device`]'s
/// parser and kept in its canonical spelling (a run's saved arguments hold it).
fn parse_device(s: &str) -> Result<String, String> {
    s.parse::<tapegrad_autograd::Device>().map(|d| d.to_string()).map_err(|e| e.to_string())
}

/// How the learning rate moves over a run (a multiplier of `--lr` per step).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The same rate throughout (after `--warmup`, if any): the tutorial's Adam 1e-3.
    Constant,
    /// Linear warmup, then linear decay to 0 at the last step (transformers' default).
    Linear,
    /// Linear warmup, then a half cosine down to 0 at the last step.
    Cosine,
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Which model to fine-tune.
    #[arg(long, value_enum, default_value = "bilstm")]
    pub model: ModelKind,
    /// aclImdb directory or .tar.gz archive [required, except with --resume: the run's own].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// GloVe vectors (.txt or .txt.gz) for the BiLSTM's embedding.
    #[arg(long)]
    pub embeddings: Option<PathBuf>,
    /// Pretrained model folder (config.json, model.safetensors, tokenizer.json) for BERT.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Run folder: checkpoints, metrics.jsonl, curves.svg.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Cache folder for converted embeddings.
    #[arg(long, default_value = ".cache/finetune-imdb")]
    pub cache: PathBuf,
    /// Epochs [default: 5 for bilstm, 2 for bert].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size [default: 64 for bilstm, 16 for bert].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 1e-3 (Adam) for bilstm, 3e-5 (AdamW) for bert].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay [default: 0 for bilstm, 0.01 for bert; never on biases and LayerNorm].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Warmup as a fraction of all steps, in [0, 1) [default: 0 bilstm, 0.1 bert].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Learning-rate schedule after the warmup [default: constant for bilstm (the
    /// tutorial's), linear for bert].
    #[arg(long, value_enum)]
    #[serde(default)]
    pub schedule: Option<ScheduleKind>,
    /// Clip gradients to this global norm [default: 1.0; for bilstm a measured departure
    /// from the tutorial, which does not clip (README)].
    #[arg(long)]
    pub clip: Option<f64>,
    /// BiLSTM hidden size.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// BiLSTM layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Dropout probability, in [0, 1) (BiLSTM; BERT uses its config's).
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Added to the BiLSTM's forget-gate biases at initialisation [default: 0, PyTorch's
    /// and the tutorial's init; 1 is the usual remedy for a slow start].
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub forget_bias: f64,
    /// Largest vocabulary (without `<unk>` and `<pad>`).
    #[arg(long, default_value_t = 25_000)]
    pub max_vocab: usize,
    /// Smallest count for a word to enter the vocabulary.
    #[arg(long, default_value_t = 1)]
    pub min_freq: usize,
    /// Truncate reviews to this many tokens [default: 256 for both, as the newer tutorial;
    /// at most the pretrained config's max_position_embeddings for bert].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Keep the pretrained word embeddings fixed.
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Fraction of train held out for validation, in [0, 0.5); 0 trains without validation
    /// (then `best/` is the last epoch).
    #[arg(long, default_value_t = 0.1)]
    pub valid_fraction: f64,
    /// Train on only this many reviews (a seeded subset) for quick runs.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Test on only this many reviews (a seeded subset).
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Seed of everything random: split, init, dropout, batch order.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Kernel threads [default: all cores, or TAPEGRAD_NUM_THREADS].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to train: cpu, cuda, cuda:N, or sim (the simulated GPU: slow, for tiny runs).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: String,
    /// Precision of the linear layers' and attention's products: f32, or bf16 (operands
    /// rounded to bf16, f32 sums, f32 master weights; --model bert on the CPU only).
    #[arg(long, value_enum, default_value = "f32")]
    #[serde(default)]
    pub precision: PrecisionKind,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Also keep each epoch's checkpoint, as `epoch-N/` in --out, for choosing an epoch
    /// afterwards (`eval --checkpoint OUT/epoch-N`); each is a whole checkpoint.
    #[arg(long)]
    #[serde(default)]
    pub keep_epochs: bool,
    /// Continue the run saved in this checkpoint folder (weights, optimizer, data position).
    /// Flags that shape the run may be repeated only with the same value.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Replace the run already in --out (its checkpoints, metrics and curves).
    #[arg(long)]
    #[serde(default)]
    pub overwrite: bool,
    /// Stop after this many optimizer steps in total (for tests and quick looks).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// The flags given on the command line (clap's ids), as opposed to defaults; filled
    /// by `main` so that validation can tell `--hidden 256` from no `--hidden`.
    #[arg(skip)]
    #[serde(skip)]
    pub given: Vec<String>,
}

impl TrainArgs {
    /// Whether `--<id>` (clap's id: the field name) was given on the command line.
    pub fn was_given(&self, id: &str) -> bool {
        self.given.iter().any(|g| g == id)
    }
}

/// `lr-find`: the model, data and optimizer flags of `train` (those that shape a
/// run's length or schedule do not apply), and the range of the test.
#[derive(Args, Debug, Clone)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The first learning rate.
    #[arg(long, default_value_t = 1e-7)]
    pub start_lr: f64,
    /// The last learning rate (reached at the last step unless the loss diverges first).
    #[arg(long, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Steps from --start-lr to --end-lr (one batch each), at least 10.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Smoothing of the recorded loss: the weight β of the exponential moving average
    /// (bias-corrected), in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    pub smooth: f64,
    /// Stop when the smoothed loss exceeds this multiple of its minimum (divergence).
    #[arg(long, default_value_t = 4.0)]
    pub diverge: f64,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Checkpoint folder (from `train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// aclImdb directory/archive (its test split) or a folder with pos/ and neg/.
    #[arg(long)]
    pub data: PathBuf,
    /// Which reviews: the test split, or the validation reviews the run held out
    /// (recreated from run.json's seed, --valid-fraction and --limit-train; --data must
    /// then be the data set the run trained on, checked by its fingerprint).
    #[arg(long, value_enum, default_value = "test")]
    pub split: EvalSplit,
    /// Score a seeded subset of this many of the split's reviews.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Truncate reviews to this many tokens instead of the run's --max-len (for bert at
    /// most the model's max_position_embeddings).
    #[arg(long)]
    pub max_len: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to evaluate: cpu, cuda, cuda:N, or sim (the simulated GPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: String,
    #[arg(long)]
    pub quiet: bool,
}

/// The reviews `eval` scores.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    /// The data set's test split (or a folder with pos/ and neg/).
    Test,
    /// The run's validation split, as `train` held it out.
    Valid,
}

impl EvalSplit {
    /// The name printed before the figures: `test` or `valid`.
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Test => "test",
            EvalSplit::Valid => "valid",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// Checkpoint folder (from `train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Review texts.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// Truncate texts to this many tokens instead of the run's --max-len.
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Where to run the model: cpu, cuda, cuda:N, or sim (the simulated GPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: String,
}

#[derive(Args, Debug, Clone)]
pub struct DownloadArgs {
    /// Where to put the files.
    #[arg(long, default_value = ".cache/finetune-imdb")]
    pub cache: PathBuf,
    /// What to fetch.
    #[arg(long, value_enum, default_value = "all")]
    pub what: DownloadWhat,
    /// Base URL of the IMDB archive (for mirrors).
    #[arg(long, default_value = crate::data::download::IMDB_BASE_URL)]
    pub imdb_url: String,
    /// Base URL of the MiniLM files (for mirrors).
    #[arg(long, default_value = crate::data::download::MINILM_BASE_URL)]
    pub minilm_url: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadWhat {
    Imdb,
    Minilm,
    All,
}
