//! The IMDB data pipeline: reviews, tokenizer + vocabulary, GloVe vectors,
//! length-bucketed batches and downloads.
//!
//! Everything here is plain Rust data (`Vec<u32>` token ids, `Vec<f32>`
//! row-major matrices, `u8` labels); nothing depends on the tapegrad tensor or
//! autograd API. Every random choice is a pure function of a `u64` seed (see
//! [`seed`]), so runs, splits and epochs are reproducible on any platform.
//!
//! * [`imdb`]: read `aclImdb` from a directory or straight from a `.tar.gz`.
//! * [`split`]: seeded train/validation split and `limit` subsets.
//! * [`tokenize`]: the `basic_english` tokenizer and a [`tokenize::Vocab`].
//! * [`glove`]: GloVe text parsing, a memory-mapped safetensors cache and the
//!   embedding matrix for a vocabulary.
//! * [`batch`]: length-bucketed, resumable batching.
//! * [`download`]: fetch the official archive and the MiniLM model files.

pub mod batch;
pub mod download;
pub mod glove;
pub mod imdb;
pub mod seed;
pub mod split;
pub mod tokenize;
