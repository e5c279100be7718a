//! Command-line interface: `train`, `eval`, `predict`, `download`.

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
    /// Evaluate a checkpoint on a data set (aclImdb dir/archive, or a folder with pos/ and neg/).
    Eval(EvalArgs),
    /// Print the probability that each text is positive.
    Predict(PredictArgs),
    /// Fetch the IMDB archive and the MiniLM model files into a cache folder.
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

/// `--device`: `cpu`, `cuda` or `cuda:N`, checked by [`tapegrad_autograd::Device`]'s
/// parser and kept in its canonical spelling (a run's saved arguments hold it).
fn parse_device(s: &str) -> Result<String, String> {
    s.parse::<tapegrad_autograd::Device>().map(|d| d.to_string()).map_err(|e| e.to_string())
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Which model to fine-tune.
    #[arg(long, value_enum, default_value = "bilstm")]
    pub model: ModelKind,
    /// aclImdb directory or .tar.gz archive.
    #[arg(long)]
    pub data: PathBuf,
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
    /// Warmup as a fraction of all steps (linear warmup, then linear decay) [default: 0 bilstm, 0.1 bert].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Clip gradients to this global norm [default: none for bilstm, 1.0 for bert].
    #[arg(long)]
    pub clip: Option<f64>,
    /// BiLSTM hidden size.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// BiLSTM layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Dropout probability (BiLSTM; BERT uses its config's).
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Largest vocabulary (without <unk> and <pad>).
    #[arg(long, default_value_t = 25_000)]
    pub max_vocab: usize,
    /// Smallest count for a word to enter the vocabulary.
    #[arg(long, default_value_t = 1)]
    pub min_freq: usize,
    /// Truncate reviews to this many tokens [default: none for bilstm, 256 for bert].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Keep the pretrained word embeddings fixed.
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Fraction of train held out for validation.
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
    /// Where to train: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: String,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Continue the run saved in this checkpoint folder (weights, optimizer, data position).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many optimizer steps in total (for tests and quick looks).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Checkpoint folder (from `train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// aclImdb directory/archive (its test split) or a folder with pos/ and neg/.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub limit_test: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// Checkpoint folder (from `train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Review texts.
    #[arg(required = true)]
    pub texts: Vec<String>,
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
