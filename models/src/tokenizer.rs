//! Text → token ids through Hugging Face's `tokenizers` crate and a model folder's
//! `tokenizer.json`, with our own truncation and padding.
//!
//! Files like all-MiniLM-L6-v2's bake in truncation and fixed padding to 128; a
//! training pipeline with its own `max_len` must override both: here sequences
//! are truncated to `max_len` tokens (special tokens included) and the batch is
//! padded to its longest sequence with `[PAD]`.

use crate::bert::BertInput;
use std::path::{Path, PathBuf};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: tokenizer file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot load the tokenizer: {msg}")]
    Load { path: PathBuf, msg: String },
    #[error("{path}: the vocabulary has no `{token}` token")]
    NoPadToken { path: PathBuf, token: String },
    #[error("{path}: the tokenizer does not frame a text with special tokens (`[CLS]` first, `[SEP]` last: its `post_processor`), and the classifier reads the first position")]
    NoFraming { path: PathBuf },
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

/// A WordPiece/BPE tokenizer that pads with `[PAD]` and truncates to `max_len`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
    pad_id: u32,
}

impl Tokenizer {
    /// Loads `tokenizer.json` from a model folder.
    pub fn from_dir(dir: impl AsRef<Path>, max_len: usize) -> Result<Self, TokenizerError> {
        Self::from_file(dir.as_ref().join("tokenizer.json"), max_len)
    }

    /// Loads a `tokenizer.json`, replacing its truncation (→ `max_len`, longest
    /// first) and padding (→ the batch's longest, right, `[PAD]`, token type 0).
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(TokenizerError::NotFound { path: path.into() });
        }
        let load = |msg: String| TokenizerError::Load { path: path.into(), msg };
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| load(e.to_string()))?;
        let pad_token = "[PAD]".to_string();
        let pad_id = inner
            .token_to_id(&pad_token)
            .ok_or_else(|| TokenizerError::NoPadToken { path: path.into(), token: pad_token.clone() })?;
        // Probed before our truncation and padding are set (the file's own are dropped):
        // the pooler and the classification head read position 0, so a tokenizer
        // without a special token there would have them read the text's first word.
        inner.with_truncation(None).map_err(|e| load(e.to_string()))?;
        inner.with_padding(None);
        let framed = inner
            .encode("a", true)
            .map(|e| {
                let mask = e.get_special_tokens_mask();
                mask.len() >= 2 && mask[0] == 1 && mask[mask.len() - 1] == 1
            })
            .map_err(|e| load(e.to_string()))?;
        if !framed {
            return Err(TokenizerError::NoFraming { path: path.into() });
        }
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| load(e.to_string()))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        Ok(Tokenizer { inner, max_len, pad_id })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }
    pub fn pad_id(&self) -> usize {
        self.pad_id as usize
    }
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
    /// The largest id it can give (added tokens included): a model's embedding table
    /// needs more rows than that.
    pub fn max_id(&self) -> Option<u32> {
        self.inner.get_vocab(true).into_values().max()
    }

    /// Tokenizes a batch with `[CLS] … [SEP]`: flat `[B, T]` ids, attention mask and
    /// token types, T the longest (truncated) sequence.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<BertInput, TokenizerError> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let t = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut out = BertInput {
            input_ids: Vec::with_capacity(texts.len() * t),
            attention_mask: Vec::with_capacity(texts.len() * t),
            token_type_ids: Vec::with_capacity(texts.len() * t),
            shape: [texts.len(), t],
        };
        for e in &encodings {
            debug_assert_eq!(e.len(), t, "padding to the longest gives equal lengths");
            out.input_ids.extend(e.get_ids().iter().map(|&i| i as usize));
            out.attention_mask.extend(e.get_attention_mask().iter().map(|&i| i as usize));
            out.token_type_ids.extend(e.get_type_ids().iter().map(|&i| i as usize));
        }
        Ok(out)
    }
}
