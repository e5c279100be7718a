//! Reading the Large Movie Review Dataset (`aclImdb`).
//!
//! A data path may be
//! * an `aclImdb` directory (`<root>/{train,test}/{pos,neg}/<id>_<rating>.txt`),
//!   or a directory that contains `aclImdb/`;
//! * an `aclImdb` archive (`.tar.gz`, or a plain `.tar`), read streaming, entry
//!   by entry, without unpacking anything to disk. Any path prefix is accepted:
//!   entries are recognised by their last three components
//!   `{train,test}/{pos,neg}/<name>.txt`;
//! * a *labeled folder*: a directory that directly holds `pos/` and `neg/`
//!   subfolders of `.txt` files (read with [`read_labeled_dir`], or by
//!   [`read_imdb`], which returns it as the `test` split, for evaluation).
//!
//! Labels come from the folder names: `pos` = 1, `neg` = 0. `unsup/`, `*.feat`,
//! `README`, `imdb.vocab` and anything else are ignored. Text is cleaned with
//! [`clean_text`]; files that are not valid UTF-8 are decoded lossily and
//! counted in [`ReadStats::lossy_utf8`]. Reviews are returned sorted by their
//! [`Review::id`], so the result does not depend on directory or archive order.

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// One labelled review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Cleaned review text (see [`clean_text`]).
    pub text: String,
    /// 1 = positive (`pos/`), 0 = negative (`neg/`).
    pub label: u8,
    /// `"<split>/<pos|neg>/<file name>"`, e.g. `"train/pos/123_9.txt"`; for a
    /// labeled folder `"<pos|neg>/<file name>"`. Unique within a data set.
    pub id: String,
    /// The star rating from a `<id>_<rating>.txt` file name, if it has one.
    pub rating: Option<u8>,
}

/// The two labelled splits of aclImdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The folder name, `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    fn from_name(name: &str) -> Option<Split> {
        match name {
            "train" => Some(Split::Train),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts gathered while reading; the library never prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Review files read.
    pub files: usize,
    /// Of those, files that were not valid UTF-8 and were decoded lossily.
    pub lossy_utf8: usize,
    /// Of those, files with no text (nothing but whitespace): each is read as a review of
    /// no words.
    pub empty: usize,
    /// Bytes of review text read (before decoding).
    pub bytes: u64,
    /// Archive entries or directory files that were skipped (not a labelled
    /// review of a requested split).
    pub skipped: usize,
}

impl ReadStats {
    /// What a reader of `path` should be told (the library never prints): files decoded
    /// lossily, empty reviews.
    pub fn warnings(&self, path: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if self.lossy_utf8 > 0 {
            out.push(format!(
                "warning: {} of {} reviews in {} were not valid UTF-8 and were decoded lossily",
                self.lossy_utf8,
                self.files,
                path.display()
            ));
        }
        if self.empty > 0 {
            out.push(format!(
                "warning: {} of {} reviews in {} are empty; each is read as a review of no words",
                self.empty,
                self.files,
                path.display()
            ));
        }
        out
    }
}

/// What [`read_imdb`] returns.
#[derive(Debug, Clone, Default)]
pub struct ImdbData {
    /// Training reviews (empty if not requested).
    pub train: Vec<Review>,
    /// Test reviews (empty if not requested).
    pub test: Vec<Review>,
    pub stats: ReadStats,
}

impl ImdbData {
    /// The reviews of one split.
    pub fn split(&self, split: Split) -> &[Review] {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }
}

/// Errors from reading a data path. Each names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum ImdbError {
    #[error("data path {path} does not exist")]
    NotFound { path: PathBuf },
    #[error("{}", missing_labels(.path, .split.as_deref(), .missing))]
    MissingLabels {
        path: PathBuf,
        /// `None` for a labeled folder (`pos/` and `neg/` directly inside `path`).
        split: Option<String>,
        missing: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("corrupt archive {path} (after {reviews} reviews): {source}")]
    CorruptArchive { path: PathBuf, reviews: usize, source: io::Error },
    #[error(
        "{path}: the archive ends after {reviews} reviews without its end-of-archive marker: \
         the file is cut short (an interrupted download or copy?)"
    )]
    TruncatedArchive { path: PathBuf, reviews: usize },
    #[error("{path} is neither a directory nor a .tar/.tar.gz archive")]
    NotADataSet { path: PathBuf },
}

fn missing_labels(path: &Path, split: Option<&str>, missing: &str) -> String {
    let p = path.display();
    match split {
        Some(split) => format!(
            "{p}: no `{split}/{missing}` folder with .txt reviews (an aclImdb folder or archive \
             holds {split}/pos and {split}/neg)"
        ),
        None => {
            let other = if missing == "pos" { "neg" } else { "pos" };
            format!("{p}: no `{missing}` folder with .txt reviews beside `{other}` (a labeled folder holds pos/ and neg/)")
        }
    }
}

/// Replace the HTML line breaks of the IMDB reviews (`<br />`, `<br/>`,
/// `<br>`, any case, any spaces before the `/`) by a single space.
pub fn clean_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0; // start of the not yet copied part
    let mut i = 0;
    while let Some(off) = text[i..].find('<') {
        let start = i + off;
        if let Some(end) = br_tag_end(&bytes[start..]) {
            out.push_str(&text[last..start]);
            out.push(' ');
            last = start + end;
            i = last;
        } else {
            i = start + 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Length of a `<br ... >` tag at the start of `s` (`s[0] == b'<'`).
fn br_tag_end(s: &[u8]) -> Option<usize> {
    if s.len() < 4 || !s[1].eq_ignore_ascii_case(&b'b') || !s[2].eq_ignore_ascii_case(&b'r') {
        return None;
    }
    let mut j = 3;
    while j < s.len() && s[j] == b' ' {
        j += 1;
    }
    if j < s.len() && s[j] == b'/' {
        j += 1;
    }
    (j < s.len() && s[j] == b'>').then_some(j + 1)
}

/// Decode review bytes: UTF-8, lossily if needed (`stats.lossy_utf8` counts it).
fn decode(bytes: Vec<u8>, stats: &mut ReadStats) -> String {
    stats.files += 1;
    stats.bytes += bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            stats.lossy_utf8 += 1;
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    stats.empty += usize::from(text.trim().is_empty());
    text
}

fn label_of(folder: &str) -> Option<u8> {
    match folder {
        "pos" => Some(1),
        "neg" => Some(0),
        _ => None,
    }
}

/// `"123_9.txt"` → `Some(9)`.
fn rating_of(file_name: &str) -> Option<u8> {
    let stem = file_name.strip_suffix(".txt")?;
    stem.rsplit_once('_')?.1.parse().ok()
}

fn make_review(raw: Vec<u8>, label: u8, id: String, file: &str, stats: &mut ReadStats) -> Review {
    Review { text: clean_text(&decode(raw, stats)), label, rating: rating_of(file), id }
}

/// Read the requested splits of the data set at `path` (see the module docs
/// for what `path` may be). A labeled folder (`pos/` + `neg/` directly inside)
/// is returned as the test split. Each requested split must have both classes.
pub fn read_imdb(path: &Path, splits: &[Split]) -> Result<ImdbData, ImdbError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImdbError::NotFound { path: path.to_owned() },
        _ => ImdbError::Read { path: path.to_owned(), source: e },
    })?;
    let mut data = ImdbData::default();
    if meta.is_dir() {
        // Either class folder directly inside: a labeled folder (which then says
        // which of the two is missing).
        if path.join("pos").is_dir() || path.join("neg").is_dir() {
            let (test, stats) = read_labeled_dir(path)?;
            data.test = test;
            data.stats = stats;
            return Ok(data);
        }
        let root = if path.join("aclImdb").is_dir() && !path.join("train").is_dir() {
            path.join("aclImdb")
        } else {
            path.to_owned()
        };
        for &split in splits {
            let reviews = read_pos_neg(&root.join(split.name()), split.name(), &mut data.stats).map_err(
                |e| match e {
                    ImdbError::MissingLabels { missing, .. } => ImdbError::MissingLabels {
                        path: root.clone(),
                        split: Some(split.name().into()),
                        missing,
                    },
                    other => other,
                },
            )?;
            match split {
                Split::Train => data.train = reviews,
                Split::Test => data.test = reviews,
            }
        }
        Ok(data)
    } else if meta.is_file() {
        read_archive(path, splits)
    } else {
        Err(ImdbError::NotADataSet { path: path.to_owned() })
    }
}

/// Read one split (convenience wrapper around [`read_imdb`]).
pub fn read_split(path: &Path, split: Split) -> Result<(Vec<Review>, ReadStats), ImdbError> {
    let mut data = read_imdb(path, &[split])?;
    let reviews = match split {
        Split::Train if !data.train.is_empty() => std::mem::take(&mut data.train),
        // A labeled folder is returned as `test` whatever was asked.
        _ => std::mem::take(&mut data.test),
    };
    Ok((reviews, data.stats))
}

/// Whether `dir` directly has `pos/` and `neg/` subfolders.
pub fn is_labeled_dir(dir: &Path) -> bool {
    // Either one: a folder with only `pos/` is a labeled folder missing `neg/`.
    dir.join("pos").is_dir() || dir.join("neg").is_dir()
}

/// Read a folder that directly holds `pos/` and `neg/` subfolders of `.txt`
/// reviews. Ids are `"pos/<file>"` / `"neg/<file>"`.
pub fn read_labeled_dir(dir: &Path) -> Result<(Vec<Review>, ReadStats), ImdbError> {
    if !dir.exists() {
        return Err(ImdbError::NotFound { path: dir.to_owned() });
    }
    let mut stats = ReadStats::default();
    let reviews = read_pos_neg(dir, "", &mut stats)?;
    Ok((reviews, stats))
}

/// Read `<dir>/pos/*.txt` and `<dir>/neg/*.txt`; ids are prefixed by `prefix/`.
fn read_pos_neg(dir: &Path, prefix: &str, stats: &mut ReadStats) -> Result<Vec<Review>, ImdbError> {
    let mut reviews = Vec::new();
    for folder in ["pos", "neg"] {
        let label = label_of(folder).expect("pos/neg");
        let sub = dir.join(folder);
        let missing = || ImdbError::MissingLabels {
            path: dir.to_owned(),
            split: (!prefix.is_empty()).then(|| prefix.to_string()),
            missing: if folder == "pos" { "pos" } else { "neg" },
        };
        if !sub.is_dir() {
            return Err(missing());
        }
        let entries = fs::read_dir(&sub).map_err(|e| ImdbError::Read { path: sub.clone(), source: e })?;
        let before = reviews.len();
        for entry in entries {
            let entry = entry.map_err(|e| ImdbError::Read { path: sub.clone(), source: e })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                stats.skipped += 1;
                continue;
            };
            let file_path = entry.path();
            // Directories are skipped; anything else named *.txt (files,
            // symlinks) must be readable.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !name.ends_with(".txt") || is_dir {
                stats.skipped += 1;
                continue;
            }
            let raw =
                fs::read(&file_path).map_err(|e| ImdbError::Read { path: file_path.clone(), source: e })?;
            let id = if prefix.is_empty() {
                format!("{folder}/{name}")
            } else {
                format!("{prefix}/{folder}/{name}")
            };
            reviews.push(make_review(raw, label, id, name, stats));
        }
        if reviews.len() == before {
            return Err(missing());
        }
    }
    reviews.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(reviews)
}

/// Stream a `.tar.gz` (gzip detected by its magic bytes) or plain `.tar`.
fn read_archive(path: &Path, splits: &[Split]) -> Result<ImdbData, ImdbError> {
    let file = fs::File::open(path).map_err(|e| ImdbError::Read { path: path.to_owned(), source: e })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 2];
    let n = read_full(&mut reader, &mut magic)
        .map_err(|e| ImdbError::Read { path: path.to_owned(), source: e })?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(reader);
    if n == 2 && magic == [0x1f, 0x8b] {
        read_tar(path, MultiGzDecoder::new(stream), splits)
    } else {
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if !name.ends_with(".tar") {
            return Err(ImdbError::NotADataSet { path: path.to_owned() });
        }
        read_tar(path, stream, splits)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The stream under the tar reader: notes whether the tar reader ran into its end.
/// A complete archive ends with an end-of-archive marker (zero blocks), which the
/// tar reader stops at without reaching the end of the stream; one cut at an entry
/// boundary just ends, and the tar reader takes that as the end of the archive.
struct EndTracking<R> {
    inner: R,
    hit_end: bool,
}

impl<R: Read> Read for EndTracking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hit_end |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

fn read_tar<R: Read>(path: &Path, reader: R, splits: &[Split]) -> Result<ImdbData, ImdbError> {
    let mut archive = tar::Archive::new(EndTracking { inner: reader, hit_end: false });
    let mut data = ImdbData::default();
    let mut raw = Vec::new();
    let reviews = |d: &ImdbData| d.train.len() + d.test.len();
    let corrupt = |d: &ImdbData, e: io::Error| ImdbError::CorruptArchive {
        path: path.to_owned(),
        reviews: reviews(d),
        source: e,
    };
    let entries = archive.entries().map_err(|e| corrupt(&data, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(&data, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let entry_path = entry.path().map_err(|e| corrupt(&data, e))?.into_owned();
        let comps: Vec<&str> = entry_path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let Some(&[split, folder, name]) = comps.len().checked_sub(3).map(|k| &comps[k..]) else {
            data.stats.skipped += 1;
            continue;
        };
        let (Some(split), Some(label)) = (Split::from_name(split), label_of(folder)) else {
            data.stats.skipped += 1;
            continue;
        };
        if !name.ends_with(".txt") || !splits.contains(&split) {
            data.stats.skipped += 1;
            continue;
        }
        raw.clear();
        entry.read_to_end(&mut raw).map_err(|e| corrupt(&data, e))?;
        let id = format!("{}/{folder}/{name}", split.name());
        let review = make_review(std::mem::take(&mut raw), label, id, name, &mut data.stats);
        match split {
            Split::Train => data.train.push(review),
            Split::Test => data.test.push(review),
        }
    }
    let mut rest = archive.into_inner();
    if rest.hit_end {
        return Err(ImdbError::TruncatedArchive { path: path.to_owned(), reviews: reviews(&data) });
    }
    // Read what follows the marker (the tar's padding, then the gzip trailer):
    // only at its end does the gzip decoder check the CRC and the length.
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(&data, e))?;
    for &split in splits {
        let reviews = match split {
            Split::Train => &mut data.train,
            Split::Test => &mut data.test,
        };
        for (label, missing) in [(1u8, "pos"), (0u8, "neg")] {
            if !reviews.iter().any(|r| r.label == label) {
                return Err(ImdbError::MissingLabels {
                    path: path.to_owned(),
                    split: Some(split.name().into()),
                    missing,
                });
            }
        }
        reviews.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn br_tags_become_spaces() {
        assert_eq!(clean_text("a<br />b"), "a b");
        assert_eq!(clean_text("a<br/>b<BR>c<br  />"), "a b c ");
        assert_eq!(clean_text("<br /><br />x"), "  x");
        assert_eq!(clean_text("1 < 2 <b>bold</b> <br"), "1 < 2 <b>bold</b> <br");
        assert_eq!(clean_text("héllo<br />wörld"), "héllo wörld");
        assert_eq!(clean_text(""), "");
    }

    #[test]
    fn ratings_from_file_names() {
        assert_eq!(rating_of("123_9.txt"), Some(9));
        assert_eq!(rating_of("0_10.txt"), Some(10));
        assert_eq!(rating_of("review.txt"), None);
    }

    #[test]
    fn lossy_and_empty_reviews_are_counted() {
        let mut stats = ReadStats::default();
        assert_eq!(decode(b"ok".to_vec(), &mut stats), "ok");
        assert_eq!(decode(vec![b'a', 0xff, b'b'], &mut stats), "a\u{fffd}b");
        assert_eq!((stats.files, stats.lossy_utf8, stats.bytes), (2, 1, 5));
        assert_eq!(decode(b" \n\t".to_vec(), &mut stats), " \n\t");
        assert_eq!(decode(Vec::new(), &mut stats), "");
        assert_eq!((stats.files, stats.lossy_utf8, stats.empty), (4, 1, 2));
        let said = stats.warnings(Path::new("imdb"));
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("1 of 4 reviews in imdb were not valid UTF-8"), "{said:?}");
        assert!(said[1].contains("2 of 4 reviews in imdb are empty"), "{said:?}");
        assert!(ReadStats::default().warnings(Path::new("imdb")).is_empty());
    }
}
