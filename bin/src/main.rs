//! `finetune-imdb`: fine-tune a BiLSTM (GloVe) or MiniLM (BERT) on IMDB.
//!
//! The last line of `train` and `eval` is machine-readable:
//! `test_accuracy=<fraction> reviews=<count>`. Exit codes: 0 done, 1 error,
//! 2 bad command line (clap), 130 interrupted by Ctrl-C.

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use finetune_imdb::cli::{Cli, Command, DownloadWhat};
use finetune_imdb::data::download::{download_imdb, download_minilm, DownloadOptions};
use finetune_imdb::train::{self, Interrupt};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = |m: &clap::ArgMatches| -> Vec<String> {
        m.ids()
            .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect()
    };
    match (&mut cli.command, matches.subcommand()) {
        (Command::Train(args), Some(("train", m))) => args.given = given(m),
        (Command::LrFind(args), Some(("lr-find", m))) => args.train.given = given(m),
        _ => {}
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", train::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => {
            // Ctrl-C: the first stops the run at the next safe point (after the step,
            // saving `last/`; at once while loading); a second exits at once.
            let interrupt = Arc::new(Interrupt::default());
            let handler = interrupt.clone();
            ctrlc::set_handler(move || handler.ctrl_c()).context("installing the Ctrl-C handler")?;
            let outcome = train::train(*args, interrupt)?;
            match outcome.test_accuracy {
                Some(acc) => println!("test_accuracy={acc:.4} reviews={}", outcome.test_reviews),
                None => println!("interrupted=true"),
            }
            Ok(if outcome.ctrl_c { ExitCode::from(Interrupt::EXIT_CODE) } else { ExitCode::SUCCESS })
        }
        Command::LrFind(args) => {
            let interrupt = Arc::new(Interrupt::default());
            let handler = interrupt.clone();
            ctrlc::set_handler(move || handler.ctrl_c()).context("installing the Ctrl-C handler")?;
            let found = train::lr_find::lr_find(*args, interrupt)?;
            match found.suggestion {
                Some(lr) => println!("suggested_lr={lr:.3e} steps={}", found.steps),
                None => println!("suggested_lr=none steps={}", found.steps),
            }
            Ok(if found.ctrl_c { ExitCode::from(Interrupt::EXIT_CODE) } else { ExitCode::SUCCESS })
        }
        Command::Eval(args) => {
            let r = train::evaluate::eval_checkpoint(&args)?;
            let split = args.split.name();
            if !args.quiet {
                eprintln!("{split}: loss {:.4}, accuracy {:.4} on {} reviews", r.loss, r.accuracy, r.count);
            }
            println!("{split}_accuracy={:.4} reviews={}", r.accuracy, r.count);
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
                // Each file was checked alone; whether they make one model (the weights'
                // shapes against config.json, the tokenizer against the vocabulary) is
                // what loading them tells.
                train::task::Task::bert(&dir, 128, 0)
                    .with_context(|| format!("{}: the files do not make one model", dir.display()))?;
                println!("minilm={}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
