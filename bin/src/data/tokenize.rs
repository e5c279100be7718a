//! Word-level tokenizer and vocabulary for the BiLSTM.
//!
//! # Tokenizer rule
//!
//! [`tokenize`] is exactly torchtext's `get_tokenizer("basic_english")`, so a
//! PyTorch reference can reproduce our token ids:
//!
//! 1. lowercase the text (Unicode `to_lowercase`);
//! 2. `'` becomes a token of its own (`" ' "`);
//! 3. `"` is deleted;
//! 4. `.` `,` `(` `)` `!` `?` become tokens of their own;
//! 5. `<br />` (after lowercasing) becomes a space;
//! 6. `;` and `:` become spaces;
//! 7. split on whitespace.
//!
//! Everything else (hyphens, digits, `$`, `*`, `/`, ...) stays inside the
//! word. Examples: `"Don't stop!"` → `don ' t stop !`;
//! `"A well-made film (9/10)."` → `a well-made film ( 9/10 ) .`.
//!
//! # Vocabulary
//!
//! [`Vocab`] ids: `<unk>` = 0, `<pad>` = 1 (torchtext's order; our PyTorch
//! fixtures use `padding_idx = 1`), then words by frequency descending, ties
//! broken by the word ascending (byte order), keeping words seen at least
//! `min_freq` times, at most `max_size` words *besides* the two specials (as
//! the tutorial's `MAX_VOCAB_SIZE = 25_000` gives 25,002 entries).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The unknown-word token, id [`UNK_ID`].
pub const UNK: &str = "<unk>";
/// The padding token, id [`PAD_ID`].
pub const PAD: &str = "<pad>";
/// Id of [`UNK`].
pub const UNK_ID: u32 = 0;
/// Id of [`PAD`].
pub const PAD_ID: u32 = 1;

/// Split `text` into tokens by the `basic_english` rule (module docs).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    tokenize_each(text, |t| out.push(t.to_owned()));
    out
}

/// Call `f` on each token of `text`, without allocating a `Vec<String>`.
pub fn tokenize_each(text: &str, mut f: impl FnMut(&str)) {
    let lower = text.to_lowercase();
    let lower = if lower.contains("<br />") { lower.replace("<br />", " ") } else { lower };
    let mut word = String::new();
    let flush = |word: &mut String, f: &mut dyn FnMut(&str)| {
        if !word.is_empty() {
            f(word);
            word.clear();
        }
    };
    for c in lower.chars() {
        match c {
            '"' => {}
            '\'' | '.' | ',' | '(' | ')' | '!' | '?' => {
                flush(&mut word, &mut f);
                let mut buf = [0u8; 4];
                f(c.encode_utf8(&mut buf));
            }
            ';' | ':' => flush(&mut word, &mut f),
            c if c.is_whitespace() => flush(&mut word, &mut f),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut f);
}

/// Vocabulary errors.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("invalid vocabulary JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid vocabulary: {0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    InFile { path: PathBuf, source: Box<VocabError> },
}

/// How to build a [`Vocab`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabOptions {
    /// At most this many words besides `<unk>` and `<pad>` (`None`: no limit).
    pub max_size: Option<usize>,
    /// Keep words seen at least this often (values below 1 act as 1).
    pub min_freq: usize,
}

impl Default for VocabOptions {
    fn default() -> Self {
        VocabOptions { max_size: None, min_freq: 1 }
    }
}

/// Word counts, to build a [`Vocab`] from.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    counts: HashMap<String, usize>,
}

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count the tokens of `text`.
    pub fn add_text(&mut self, text: &str) {
        tokenize_each(text, |t| self.add(t));
    }

    /// Count one token.
    pub fn add(&mut self, token: &str) {
        if let Some(c) = self.counts.get_mut(token) {
            *c += 1;
        } else {
            self.counts.insert(token.to_owned(), 1);
        }
    }

    /// The count of `token`.
    pub fn get(&self, token: &str) -> usize {
        self.counts.get(token).copied().unwrap_or(0)
    }

    /// Distinct tokens counted.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct VocabJson {
    itos: Vec<String>,
}

/// A word ↔ id table with `<unk>` = 0 and `<pad>` = 1 (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: HashMap<String, u32>,
}

impl Vocab {
    /// Build from counts (module docs for the order and options). The special
    /// tokens are never counted as words.
    pub fn from_counter(counter: &Counter, opts: &VocabOptions) -> Vocab {
        let min_freq = opts.min_freq.max(1);
        let mut words: Vec<(&str, usize)> = counter
            .counts
            .iter()
            .filter(|(w, &c)| c >= min_freq && w.as_str() != UNK && w.as_str() != PAD)
            .map(|(w, &c)| (w.as_str(), c))
            .collect();
        words.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        if let Some(max) = opts.max_size {
            words.truncate(max);
        }
        let itos =
            [UNK, PAD].into_iter().chain(words.into_iter().map(|(w, _)| w)).map(str::to_owned).collect();
        Self::from_itos_unchecked(itos)
    }

    /// Build from texts (tokenized with [`tokenize`]), e.g. the training split.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, opts: &VocabOptions) -> Vocab {
        let mut counter = Counter::new();
        for t in texts {
            counter.add_text(t);
        }
        Self::from_counter(&counter, opts)
    }

    /// From an id-ordered word list, which must start with `<unk>`, `<pad>`
    /// and have no duplicates.
    pub fn from_words(itos: Vec<String>) -> Result<Vocab, VocabError> {
        if itos.len() < 2 || itos[0] != UNK || itos[1] != PAD {
            return Err(VocabError::Invalid(format!("the first two words must be {UNK} and {PAD}")));
        }
        if itos.len() > u32::MAX as usize {
            return Err(VocabError::Invalid("too many words".into()));
        }
        let vocab = Self::from_itos_unchecked(itos);
        if vocab.stoi.len() != vocab.itos.len() {
            return Err(VocabError::Invalid("duplicate words".into()));
        }
        Ok(vocab)
    }

    fn from_itos_unchecked(itos: Vec<String>) -> Vocab {
        let stoi = itos.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        Vocab { itos, stoi }
    }

    /// Number of entries, specials included.
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// Never true (the specials are always there); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    /// The id of `word`, if it is in the vocabulary.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.stoi.get(word).copied()
    }

    /// The id of `word`, [`UNK_ID`] if absent.
    pub fn id(&self, word: &str) -> u32 {
        self.get(word).unwrap_or(UNK_ID)
    }

    /// The word of `id`.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.itos.get(id as usize).map(String::as_str)
    }

    /// All words in id order.
    pub fn words(&self) -> &[String] {
        &self.itos
    }

    /// Ids of tokens.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref())).collect()
    }

    /// Tokenize `text` ([`tokenize`]) and encode it.
    pub fn encode_text(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        tokenize_each(text, |t| ids.push(self.id(t)));
        ids
    }

    /// Words of ids (unknown ids become `<unk>`), joined by spaces.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.word(i).unwrap_or(UNK)).collect::<Vec<_>>().join(" ")
    }

    /// `{"itos": [...]}`, e.g. for a checkpoint's metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&VocabJson { itos: self.itos.clone() }).expect("strings serialize")
    }

    /// Inverse of [`Vocab::to_json`] (validated like [`Vocab::from_words`]).
    pub fn from_json(json: &str) -> Result<Vocab, VocabError> {
        let v: VocabJson = serde_json::from_str(json)?;
        Self::from_words(v.itos)
    }

    /// Save as JSON, `{"itos": ["<unk>", "<pad>", ...]}` (the words in id order).
    pub fn save(&self, path: &Path) -> Result<(), VocabError> {
        std::fs::write(path, self.to_json()).map_err(|e| VocabError::Io { path: path.to_owned(), source: e })
    }

    /// Load a file written by [`Vocab::save`]. The older format, one word per
    /// line in id order (written before `vocab.json` became JSON), is still read:
    /// a JSON file starts with `{`, an old one with the word `<unk>`.
    pub fn load(path: &Path) -> Result<Vocab, VocabError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| VocabError::Io { path: path.to_owned(), source: e })?;
        let in_file = |e: VocabError| VocabError::InFile { path: path.to_owned(), source: Box::new(e) };
        if text.trim_start().starts_with('{') {
            Self::from_json(&text).map_err(in_file)
        } else {
            Self::from_words(text.lines().map(str::to_owned).collect()).map_err(in_file)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_english_rule() {
        assert_eq!(tokenize("Don't stop!"), ["don", "'", "t", "stop", "!"]);
        assert_eq!(tokenize("A well-made film (9/10)."), ["a", "well-made", "film", "(", "9/10", ")", "."]);
        assert_eq!(
            tokenize("He said: \"Great; really?\"<br />Yes,no..."),
            ["he", "said", "great", "really", "?", "yes", ",", "no", ".", ".", "."]
        );
        assert_eq!(tokenize("  \tÉTÉ\n"), ["été"]);
        assert!(tokenize("").is_empty());
        assert_eq!(tokenize("<BR />x"), ["x"]);
    }

    #[test]
    fn vocab_order_specials_and_limits() {
        let v = Vocab::build(["b a c a b d", "a e"], &VocabOptions::default());
        assert_eq!(v.words(), ["<unk>", "<pad>", "a", "b", "c", "d", "e"]);
        assert_eq!(v.id("a"), 2);
        assert_eq!(v.id("zzz"), UNK_ID);
        let v = Vocab::build(["b a c a b d", "a e"], &VocabOptions { max_size: Some(2), min_freq: 1 });
        assert_eq!(v.words(), ["<unk>", "<pad>", "a", "b"]);
        let v = Vocab::build(["b a c a b d <pad>", "a e"], &VocabOptions { max_size: None, min_freq: 2 });
        assert_eq!(v.words(), ["<unk>", "<pad>", "a", "b"]);
        assert_eq!(v.encode_text("A b, z"), [2, 3, 0, 0]);
        assert_eq!(v.decode(&[2, 3, 99]), "a b <unk>");
    }

    #[test]
    fn json_and_file_round_trip() {
        let v = Vocab::build(["x y y \"z\" é"], &VocabOptions::default());
        assert_eq!(Vocab::from_json(&v.to_json()).unwrap(), v);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vocab.txt");
        v.save(&p).unwrap();
        assert_eq!(Vocab::load(&p).unwrap(), v);
        assert!(Vocab::from_json("{\"itos\": [\"a\", \"<pad>\"]}").is_err());
        assert!(Vocab::from_json("{\"itos\": [\"<unk>\", \"<pad>\", \"a\", \"a\"]}").is_err());
        assert!(Vocab::from_json("not json").is_err());
        assert!(Vocab::load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn vocab_json_is_json_and_the_line_format_still_loads() {
        let v = Vocab::build(["the film the end"], &VocabOptions::default());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vocab.json");
        v.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).expect("vocab.json is JSON");
        assert_eq!(json["itos"][0], UNK);
        assert_eq!(json["itos"].as_array().unwrap().len(), v.len());
        assert_eq!(Vocab::load(&p).unwrap(), v);
        // A vocab.json of the older format, one word per line.
        std::fs::write(&p, "<unk>\n<pad>\nthe\nend\nfilm\n").unwrap();
        assert_eq!(Vocab::load(&p).unwrap(), v);
        // Errors name the file.
        std::fs::write(&p, "{\"itos\": 3}").unwrap();
        let e = Vocab::load(&p).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("JSON"), "{e}");
        std::fs::write(&p, "the\n<unk>\n").unwrap();
        let e = Vocab::load(&p).unwrap_err().to_string();
        assert!(e.contains("vocab.json") && e.contains("<unk>"), "{e}");
    }
}
