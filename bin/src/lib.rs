//! `finetune_imdb`: the library half of the `finetune-imdb` program.
//!
//! [`data`] is the data pipeline (IMDB reviews, tokenizer and vocabulary, GloVe
//! embeddings, length-bucketed batching, downloads). It is deliberately
//! independent of the tapegrad autograd API: it produces plain `Vec<u32>` token
//! ids, `Vec<f32>` matrices and labels that the training code turns into tensors.

pub mod cli;
pub mod data;
pub mod report;
pub mod train;
