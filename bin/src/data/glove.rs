//! Pretrained GloVe word vectors.
//!
//! * [`Glove::from_text`] parses the GloVe text format (`word v1 .. vD` per
//!   line, `.txt` or gzip-compressed `.txt.gz`, detected by the gzip magic
//!   bytes). A word may contain spaces (as in `glove.840B`): the last `D` fields
//!   are the vector. The first occurrence of a repeated word wins.
//! * [`Glove::load_cached`] parses once and writes a safetensors cache (tensor
//!   `vectors` `[V, D]` f32, the words newline-joined in the metadata key
//!   `words`, plus the source's size and modification time to detect a changed
//!   source), atomically (temp file in the cache dir, fsync, rename). Later runs
//!   memory-map the cache instead of re-parsing text.
//! * [`Glove::embedding_matrix`] builds the `[vocab, D]` embedding matrix as
//!   the tutorial does: GloVe rows for known words, N(0, 1) from a seed for the
//!   others (`unk_init=torch.Tensor.normal_`), then `<unk>` and `<pad>` zeroed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorView};
use std::sync::Arc;
use tapegrad_models::safetensors_io::SafeTensorsFile;

use super::seed::{self, Purpose};
use super::tokenize::{Vocab, PAD_ID, UNK_ID};

/// The format tag stored in the cache metadata.
const CACHE_FORMAT: &str = "tapegrad-glove-v1";

/// GloVe errors; each names the file (and line, for parse errors).
#[derive(Debug, thiserror::Error)]
pub enum GloveError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: expected {expected} dimensions, found {found}")]
    DimMismatch { path: PathBuf, line: usize, expected: usize, found: usize },
    #[error("{path}:{line}: not a finite number: {value:?}")]
    BadNumber { path: PathBuf, line: usize, value: String },
    #[error("{path}: no vectors")]
    Empty { path: PathBuf },
    /// The cache is not a valid safetensors file (the error names it).
    #[error("bad GloVe cache file: {0}")]
    CacheFile(tapegrad_models::safetensors_io::SafetensorsError),
    #[error("{path}: bad cache file: {reason}")]
    BadCache { path: PathBuf, reason: String },
}

enum Storage {
    Owned(Vec<f32>),
    /// The mapped cache file and the byte range of the `[V, D]` f32 data
    /// (little-endian, 4-byte aligned: checked when loading).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        end: usize,
    },
}

/// Where [`Glove::load_cached`] got its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// A valid cache existed and was memory-mapped.
    Hit,
    /// The text was parsed and the cache (re)written, then memory-mapped.
    Built,
}

/// Coverage of a vocabulary by GloVe, from [`Glove::embedding_matrix`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingMatrix {
    /// `[rows, dim]` row-major.
    pub data: Vec<f32>,
    pub rows: usize,
    pub dim: usize,
    /// Vocabulary words (specials excluded) found in GloVe.
    pub found: usize,
    /// Vocabulary words (specials excluded) initialised randomly.
    pub missing: usize,
}

impl EmbeddingMatrix {
    /// The row of `id`.
    pub fn row(&self, id: u32) -> &[f32] {
        let i = id as usize * self.dim;
        &self.data[i..i + self.dim]
    }

    /// `found / (found + missing)`.
    pub fn coverage(&self) -> f64 {
        self.found as f64 / (self.found + self.missing).max(1) as f64
    }
}

/// A GloVe table: words, their row index, and a `[V, D]` f32 matrix (owned or
/// memory-mapped).
pub struct Glove {
    words: Vec<String>,
    index: HashMap<String, u32>,
    dim: usize,
    storage: Storage,
    /// What parsing the text passed over (all zero for a cache that was already built).
    pub notes: ParseNotes,
}

/// Lines of a GloVe text that were read but not as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseNotes {
    /// Repeated words skipped (the first vector of each is kept).
    pub duplicates: usize,
    /// Lines that were not valid UTF-8: their words were decoded lossily, so they match
    /// no review word.
    pub lossy_utf8: usize,
    /// The first of those lines (1-based).
    pub first_lossy_line: Option<usize>,
}

impl ParseNotes {
    /// What a reader of `path` should be told (the library never prints).
    pub fn warning(&self, path: &Path) -> Option<String> {
        let line = self.first_lossy_line?;
        Some(format!(
            "warning: {}: {} line(s) were not valid UTF-8 (the first: line {line}); their words were \
             decoded lossily and match no review word",
            path.display(),
            self.lossy_utf8
        ))
    }
}

impl std::fmt::Debug for Glove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glove")
            .field("words", &self.words.len())
            .field("dim", &self.dim)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> GloveError + '_ {
    move |e| GloveError::Io { path: path.to_owned(), source: e }
}

impl Glove {
    /// Parse a GloVe text file (`.txt` or gzip). `expected_dim`: fail on the
    /// first line with another dimension (otherwise the first line sets it).
    pub fn from_text(path: &Path, expected_dim: Option<usize>) -> Result<Glove, GloveError> {
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let gz = reader.fill_buf().map_err(io_err(path))?.starts_with(&[0x1f, 0x8b]);
        if gz {
            // Decompress on a second thread while this one parses: gunzip and
            // parsing take about the same time for glove.6B.
            let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
            let worker = std::thread::spawn(move || {
                let mut gz = MultiGzDecoder::new(reader);
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    let r = read_block(&mut gz, &mut block).map(|n| {
                        block.truncate(n);
                        block
                    });
                    let done = !matches!(&r, Ok(b) if !b.is_empty());
                    if tx.send(r).is_err() || done {
                        break;
                    }
                }
            });
            let result = Self::from_reader(
                BufReader::with_capacity(1 << 20, ChannelReader::new(rx)),
                path,
                expected_dim,
            );
            // The worker stops when the channel closes (result dropped the
            // receiver) or at the end of the stream.
            let _ = worker.join();
            result
        } else {
            Self::from_reader(reader, path, expected_dim)
        }
    }

    /// Parse GloVe text from any reader; `path` is used in error messages.
    pub fn from_reader<R: BufRead>(
        mut reader: R,
        path: &Path,
        expected_dim: Option<usize>,
    ) -> Result<Glove, GloveError> {
        let mut dim = expected_dim;
        let mut words = Vec::new();
        let mut index = HashMap::new();
        let mut data = Vec::new();
        let mut notes = ParseNotes::default();
        let mut buf = Vec::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io_err(path))? == 0 {
                break;
            }
            line_no += 1;
            let line = String::from_utf8_lossy(&buf);
            if let std::borrow::Cow::Owned(_) = line {
                notes.lossy_utf8 += 1;
                notes.first_lossy_line.get_or_insert(line_no);
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
            if fields.len() < 2 {
                return Err(GloveError::DimMismatch {
                    path: path.to_owned(),
                    line: line_no,
                    expected: dim.unwrap_or(1),
                    found: 0,
                });
            }
            let d = *dim.get_or_insert(fields.len() - 1);
            // Words may contain spaces: the vector is the last `d` fields; a
            // line with fewer than d + 1 fields is a dimension mismatch.
            if fields.len() < d + 1 {
                return Err(GloveError::DimMismatch {
                    path: path.to_owned(),
                    line: line_no,
                    expected: d,
                    found: fields.len() - 1,
                });
            }
            let split = fields.len() - d;
            // A numeric field in word position means the line has too many
            // numbers (a dimension mismatch), unless the word itself is numeric.
            if split > 1 && fields[1..split].iter().all(|f| f.parse::<f32>().is_ok()) {
                return Err(GloveError::DimMismatch {
                    path: path.to_owned(),
                    line: line_no,
                    expected: d,
                    found: fields.len() - 1,
                });
            }
            let start = data.len();
            for v in &fields[split..] {
                match v.parse::<f32>() {
                    // `nan`, `inf` and numbers past f32's range parse, but are no vector
                    Ok(x) if x.is_finite() => data.push(x),
                    _ => {
                        return Err(GloveError::BadNumber {
                            path: path.to_owned(),
                            line: line_no,
                            value: (*v).to_owned(),
                        })
                    }
                }
            }
            let word = fields[..split].join(" ");
            if index.contains_key(&word) {
                notes.duplicates += 1;
                data.truncate(start);
                continue;
            }
            index.insert(word.clone(), words.len() as u32);
            words.push(word);
        }
        let Some(dim) = dim.filter(|_| !words.is_empty()) else {
            return Err(GloveError::Empty { path: path.to_owned() });
        };
        Ok(Glove { words, index, dim, storage: Storage::Owned(data), notes })
    }

    /// The cache file [`Glove::load_cached`] uses for `source`:
    /// `<cache_dir>/<source name without .gz and .txt>.safetensors`.
    pub fn cache_path(source: &Path, cache_dir: &Path) -> PathBuf {
        let name = source.file_name().and_then(|s| s.to_str()).unwrap_or("glove");
        let name = name.strip_suffix(".gz").unwrap_or(name);
        let name = name.strip_suffix(".txt").unwrap_or(name);
        cache_dir.join(format!("{name}.safetensors"))
    }

    /// Memory-map the cache of `source` in `cache_dir` if it is valid (same
    /// source size and mtime, right dimension); otherwise parse `source`, write
    /// the cache atomically and map it.
    pub fn load_cached(
        source: &Path,
        cache_dir: &Path,
        expected_dim: Option<usize>,
    ) -> Result<(Glove, CacheStatus), GloveError> {
        let cache = Self::cache_path(source, cache_dir);
        let stamp = source_stamp(source)?;
        if cache.is_file() {
            if let Ok(g) = Self::open_cache(&cache) {
                let stamp_ok = g.cache_stamp.as_deref() == Some(stamp.as_str());
                let dim_ok = expected_dim.unwrap_or(g.glove.dim) == g.glove.dim;
                if stamp_ok && dim_ok {
                    return Ok((g.glove, CacheStatus::Hit));
                }
            }
        }
        let glove = Self::from_text(source, expected_dim)?;
        std::fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
        glove.write_cache(&cache, Some(&stamp))?;
        let mapped = Self::open_cache(&cache)?.glove;
        Ok((Glove { notes: glove.notes, ..mapped }, CacheStatus::Built))
    }

    /// Write this table as a safetensors file, atomically ([`tapegrad_fsio::write_bytes`]).
    /// `stamp` identifies the source version.
    pub fn write_cache(&self, path: &Path, stamp: Option<&str>) -> Result<(), GloveError> {
        let bytes: Vec<u8> = self.vectors().iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![self.words.len(), self.dim], &bytes)
            .map_err(|e| bad_cache(path, e))?;
        let mut meta = HashMap::new();
        meta.insert("format".to_owned(), CACHE_FORMAT.to_owned());
        meta.insert("words".to_owned(), self.words.join("\n"));
        if let Some(s) = stamp {
            meta.insert("source".to_owned(), s.to_owned());
        }
        let bytes = safetensors::tensor::serialize([("vectors", view)], Some(meta))
            .map_err(|e| bad_cache(path, e))?;
        tapegrad_fsio::write_bytes(path, &bytes).map_err(io_err(path))?;
        Ok(())
    }

    /// Memory-map a cache file written by [`Glove::write_cache`].
    pub fn from_cache(path: &Path) -> Result<Glove, GloveError> {
        Ok(Self::open_cache(path)?.glove)
    }

    fn open_cache(path: &Path) -> Result<OpenedCache, GloveError> {
        // The project's one safetensors reader: validated, memory-mapped.
        let file = SafeTensorsFile::open(path).map_err(GloveError::CacheFile)?;
        let info = file.info("vectors").ok_or_else(|| bad_cache(path, "no `vectors` tensor"))?;
        let kv = file.metadata();
        if kv.get("format").map(String::as_str) != Some(CACHE_FORMAT) {
            return Err(bad_cache(path, "not a tapegrad GloVe cache"));
        }
        let words: Vec<String> = match kv.get("words") {
            Some(w) if !w.is_empty() => w.split('\n').map(str::to_owned).collect(),
            _ => return Err(bad_cache(path, "no words")),
        };
        let &[rows, dim] = info.shape.as_slice() else {
            return Err(bad_cache(path, "`vectors` is not 2-D"));
        };
        if info.dtype != Dtype::F32 || rows != words.len() || dim == 0 {
            return Err(bad_cache(path, "`vectors` shape/dtype does not match the words"));
        }
        // The reader checked that the range lies in the file and fits the shape.
        let std::ops::Range { start, end } = file.byte_range("vectors").expect("`vectors` exists");
        let map = file.map().clone();
        let aligned = map[start..].as_ptr().align_offset(std::mem::align_of::<f32>()) == 0;
        let storage = if aligned && cfg!(target_endian = "little") {
            Storage::Mapped { map, start, end }
        } else {
            Storage::Owned(
                map[start..end]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        };
        let index: HashMap<String, u32> =
            words.iter().enumerate().map(|(i, w)| (w.clone(), i as u32)).collect();
        if index.len() != words.len() {
            return Err(bad_cache(path, "duplicate words"));
        }
        Ok(OpenedCache {
            cache_stamp: kv.get("source").cloned(),
            glove: Glove { words, index, dim, storage, notes: ParseNotes::default() },
        })
    }

    /// Vector dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of words `V`.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether the vectors are memory-mapped from a cache file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// Words in row order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The row of `word`.
    pub fn index(&self, word: &str) -> Option<usize> {
        self.index.get(word).map(|&i| i as usize)
    }

    /// The vector of `word`.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        self.index(word).map(|i| self.row(i))
    }

    /// Row `i` of the `[V, D]` matrix.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors()[i * self.dim..(i + 1) * self.dim]
    }

    /// The whole `[V, D]` matrix, row-major.
    pub fn vectors(&self) -> &[f32] {
        match &self.storage {
            Storage::Owned(v) => v,
            Storage::Mapped { map, start, end } => {
                // SAFETY: alignment and little-endianness were checked in
                // `open_cache`; every bit pattern is a valid f32.
                let (pre, floats, post) = unsafe { map[*start..*end].align_to::<f32>() };
                debug_assert!(pre.is_empty() && post.is_empty());
                floats
            }
        }
    }

    /// The `[vocab.len(), D]` embedding matrix for `vocab`: GloVe rows for
    /// words found (exact match), N(0, 1) draws from `seed` for the others (in
    /// id order, `D` draws per missing row), then `<unk>` and `<pad>` set to 0.
    pub fn embedding_matrix(&self, vocab: &Vocab, seed: u64) -> EmbeddingMatrix {
        let dim = self.dim;
        let mut data = vec![0f32; vocab.len() * dim];
        let mut rng = seed::rng(seed, Purpose::EmbeddingInit, 0);
        let (mut found, mut missing) = (0, 0);
        for (id, word) in vocab.words().iter().enumerate() {
            let special = id as u32 == UNK_ID || id as u32 == PAD_ID;
            let row = &mut data[id * dim..(id + 1) * dim];
            match self.get(word) {
                Some(v) => {
                    row.copy_from_slice(v);
                    found += usize::from(!special);
                }
                None => {
                    for x in row.iter_mut() {
                        *x = seed::standard_normal(&mut rng);
                    }
                    missing += usize::from(!special);
                }
            }
        }
        for id in [UNK_ID, PAD_ID] {
            let i = id as usize * dim;
            if i < data.len() {
                data[i..i + dim].fill(0.0);
            }
        }
        EmbeddingMatrix { data, rows: vocab.len(), dim, found, missing }
    }
}

/// Read until `buf` is full or the stream ends.
fn read_block(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// `Read` over blocks received from a channel (an empty block or a closed
/// channel is the end of the stream).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ChannelReader {
    fn new(rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader { rx, block: Vec::new(), pos: 0, done: false }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) if !b.is_empty() => {
                    self.block = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Ok(Ok(_)) | Err(_) => self.done = true,
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct OpenedCache {
    glove: Glove,
    cache_stamp: Option<String>,
}

fn bad_cache(path: &Path, e: impl std::fmt::Display) -> GloveError {
    GloveError::BadCache { path: path.to_owned(), reason: e.to_string() }
}

/// `"<size>:<mtime ns>"` of the source file, to notice a changed source.
fn source_stamp(source: &Path) -> Result<String, GloveError> {
    let meta = std::fs::metadata(source).map_err(io_err(source))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}:{}", meta.len(), mtime))
}
