//! `finetune-imdb`: fine-tune a BiLSTM (GloVe) or MiniLM (BERT) on IMDB.
//!
//! The last line of `train` and `eval` is machine-readable:
//! `test_accuracy=<fraction> reviews=<count>`.

use anyhow::{Context, Result};
use clap::Parser;
use finetune_imdb::cli::{Cli, Command, DownloadWhat};
use finetune_imdb::data::download::{download_imdb, download_minilm, DownloadOptions};
use finetune_imdb::train;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    tapegrad_autograd::alloc::retain_freed_memory();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => {
            // Ctrl-C: finish the step, save a checkpoint, exit cleanly.
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("installing the Ctrl-C handler")?;
            let outcome = train::train(*args, stop)?;
            match outcome.test_accuracy {
                Some(acc) => println!("test_accuracy={acc:.4} reviews={}", outcome.test_reviews),
                None => println!("interrupted=true"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            let r = train::evaluate::eval_checkpoint(&args)?;
            println!("test_accuracy={:.4} reviews={}", r.accuracy, r.count);
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(args) => {
            for (text, p) in args.texts.iter().zip(train::evaluate::predict_checkpoint(&args)?) {
                println!("{p:.4}\t{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Download(args) => {
            let opts = DownloadOptions::default();
            if matches!(args.what, DownloadWhat::Imdb | DownloadWhat::All) {
                let path = download_imdb(&args.imdb_url, &args.cache, None, &opts)?;
                println!("imdb={}", path.display());
            }
            if matches!(args.what, DownloadWhat::Minilm | DownloadWhat::All) {
                let dir = download_minilm(&args.minilm_url, &args.cache, &[], &opts)?;
                println!("minilm={}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
