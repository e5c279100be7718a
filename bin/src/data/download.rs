//! Downloads: the official aclImdb archive and the MiniLM model files.
//!
//! [`download_file`] streams a URL into a temp file in the destination folder
//! (with an indicatif progress bar), checks the size against `Content-Length`
//! and, if given, the SHA-256, then fsyncs and renames it into place. On any
//! error the temp file is removed, so a destination path only ever holds a
//! complete, verified file. An existing destination is reused (after
//! verifying its checksum, if one is given) unless `force` is set.
//!
//! No checksum is published for these files, so [`download_checked`] checks what came
//! (and what a cache holds) by its content, as [`Expect`] says: a cached file that fails
//! is fetched again, a fetched one that fails is removed and named in the error.
//!
//! The base URLs are arguments so that tests (or mirrors) can serve the files.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Folder URL of the official archive.
pub const IMDB_BASE_URL: &str = "https://ai.stanford.edu/~amaas/data/sentiment";
/// File name of the official archive.
pub const IMDB_ARCHIVE: &str = "aclImdb_v1.tar.gz";
/// Folder URL of the MiniLM model files on the Hugging Face hub.
pub const MINILM_BASE_URL: &str =
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main";
/// The MiniLM files fetched by [`download_minilm`].
pub const MINILM_FILES: [&str; 6] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "vocab.txt",
    "special_tokens_map.json",
    "tokenizer_config.json",
];
/// Subfolder of the cache folder for the MiniLM files.
pub const MINILM_DIR: &str = "all-MiniLM-L6-v2";

/// Download errors, each naming the URL or path concerned.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("GET {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GET {url}: expected {expected} bytes (Content-Length), got {got}")]
    SizeMismatch { url: String, expected: u64, got: u64 },
    #[error("{url}: SHA-256 mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { url: String, expected: String, actual: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{url}: what came is not {what} ({msg}); removed {path}")]
    Unusable { url: String, path: PathBuf, what: &'static str, msg: String },
}

/// Download options.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Show a progress bar on stderr (indicatif hides it if not a terminal).
    pub progress: bool,
    /// Download even if the destination exists.
    pub force: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read from the connection.
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            progress: true,
            force: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What [`download_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded this many bytes.
    Downloaded(u64),
    /// The destination already existed (and matched the checksum, if given).
    Cached,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> DownloadError + '_ {
    move |e| DownloadError::Io { path: path.to_owned(), source: e }
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, DownloadError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Download `url` to `dest` (module docs). `sha256`: expected hex digest.
pub fn download_file(
    url: &str,
    dest: &Path,
    sha256: Option<&str>,
    opts: &DownloadOptions,
) -> Result<Fetched, DownloadError> {
    let expected_sha = sha256.map(str::to_ascii_lowercase);
    if dest.is_file() && !opts.force {
        match &expected_sha {
            None => return Ok(Fetched::Cached),
            Some(want) if sha256_file(dest)? == *want => return Ok(Fetched::Cached),
            Some(_) => {} // stale or corrupt: download again
        }
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        .build()
        .into();
    // A status of 400 or more comes back as `Error::StatusCode` (ureq's default).
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(status) => DownloadError::Status { url: url.to_owned(), status },
        e => DownloadError::Transport { url: url.to_owned(), message: e.to_string() },
    })?;
    let content_length: Option<u64> = response.body().content_length();

    let name = dest.file_name().and_then(|s| s.to_str()).unwrap_or("download").to_owned();
    let bar = if opts.progress {
        let bar = match content_length {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.clone());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Streamed into a temporary file that replaces `dest` only when the size and
    // checksum are right; a failure deletes it. `failure` carries why.
    let mut failure = None;
    let mut got: u64 = 0;
    let written = tapegrad_fsio::write_file(dest, |w| {
        let mut reader = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    let message = format!("after {got} bytes: {e}");
                    failure = Some(DownloadError::Transport { url: url.to_owned(), message });
                    return Err(io::Error::other("download failed"));
                }
            };
            w.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            got += n as u64;
            bar.inc(n as u64);
        }
        bar.finish();
        if let Some(expected) = content_length.filter(|&n| n != got) {
            failure = Some(DownloadError::SizeMismatch { url: url.to_owned(), expected, got });
            return Err(io::Error::other("size mismatch"));
        }
        let actual = hex(&hasher.finalize());
        if let Some(expected) = expected_sha.filter(|e| *e != actual) {
            failure = Some(DownloadError::ChecksumMismatch { url: url.to_owned(), expected, actual });
            return Err(io::Error::other("checksum mismatch"));
        }
        Ok(())
    });
    if let Some(f) = failure {
        return Err(f);
    }
    written.map_err(|e| DownloadError::Io { path: dest.to_owned(), source: e })?;
    Ok(Fetched::Downloaded(got))
}

fn join_url(base: &str, file: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), file)
}

/// What a downloaded file must be; [`Expect::check`] reads it to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An archive [`read_imdb`](super::imdb::read_imdb) reads, with training and test reviews.
    ImdbArchive,
    /// A JSON object (`config.json`, `tokenizer.json`, …).
    JsonObject,
    /// A safetensors file whose header and offsets hold together.
    SafeTensors,
    /// UTF-8 text, not empty and not an HTML page (`vocab.txt`).
    Text,
}

impl Expect {
    /// What a MiniLM file must be, by its name's extension.
    pub fn of_minilm_file(name: &str) -> Expect {
        match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("json") => Expect::JsonObject,
            Some("safetensors") => Expect::SafeTensors,
            _ => Expect::Text,
        }
    }

    /// In an error: "what came is not …".
    fn what(self) -> &'static str {
        match self {
            Expect::ImdbArchive => "the IMDB archive",
            Expect::JsonObject => "a JSON object",
            Expect::SafeTensors => "a safetensors file",
            Expect::Text => "UTF-8 text",
        }
    }

    /// `Ok` if `path` is what `self` names; the error says what is wrong if not.
    pub fn check(self, path: &Path) -> Result<(), String> {
        match self {
            Expect::ImdbArchive => {
                use super::imdb::{read_imdb, Split};
                let data = read_imdb(path, &[Split::Train, Split::Test]).map_err(|e| e.to_string())?;
                if data.train.is_empty() || data.test.is_empty() {
                    return Err(format!(
                        "{} training and {} test reviews",
                        data.train.len(),
                        data.test.len()
                    ));
                }
            }
            Expect::JsonObject => {
                let file = fs::File::open(path).map_err(|e| e.to_string())?;
                let value: serde_json::Value =
                    serde_json::from_reader(io::BufReader::new(file)).map_err(|e| e.to_string())?;
                if !value.is_object() {
                    return Err("valid JSON, but not an object".into());
                }
            }
            Expect::SafeTensors => {
                let file = fs::File::open(path).map_err(|e| e.to_string())?;
                // SAFETY: read-only map of a file this process just wrote or found in its
                // cache; it is only read here, and dropped before returning.
                let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
                safetensors::SafeTensors::deserialize(&map).map_err(|e| e.to_string())?;
            }
            Expect::Text => {
                let bytes = fs::read(path).map_err(|e| e.to_string())?;
                let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
                if text.trim().is_empty() {
                    return Err("empty".into());
                }
                let start: String =
                    text.trim_start().chars().take(14).collect::<String>().to_ascii_lowercase();
                if start.starts_with("<!doctype html") || start.starts_with("<html") {
                    return Err("an HTML page".into());
                }
            }
        }
        Ok(())
    }
}

/// [`download_file`], then the content checked as `expect` says: a cached copy that
/// fails is fetched again (a truncated file left by another tool, say); a fetched one
/// that fails (an error page served with status 200) is removed, and the error names
/// the URL, the path and what is wrong.
pub fn download_checked(
    url: &str,
    dest: &Path,
    sha256: Option<&str>,
    expect: Expect,
    opts: &DownloadOptions,
) -> Result<Fetched, DownloadError> {
    let mut fetched = download_file(url, dest, sha256, opts)?;
    if let Err(e) = expect.check(dest) {
        if matches!(fetched, Fetched::Cached) {
            eprintln!("note: {} is not {} ({e}); downloading it again", dest.display(), expect.what());
            fetched = download_file(url, dest, sha256, &DownloadOptions { force: true, ..opts.clone() })?;
        }
        if let Err(msg) = expect.check(dest) {
            let _ = fs::remove_file(dest);
            return Err(DownloadError::Unusable {
                url: url.into(),
                path: dest.into(),
                what: expect.what(),
                msg,
            });
        }
    }
    Ok(fetched)
}

/// Download `<base_url>/aclImdb_v1.tar.gz` (pass [`IMDB_BASE_URL`]) into
/// `cache_dir`; returns the archive path (readable by
/// [`read_imdb`](super::imdb::read_imdb)).
pub fn download_imdb(
    base_url: &str,
    cache_dir: &Path,
    sha256: Option<&str>,
    opts: &DownloadOptions,
) -> Result<PathBuf, DownloadError> {
    let (dest, url) = (cache_dir.join(IMDB_ARCHIVE), join_url(base_url, IMDB_ARCHIVE));
    download_checked(&url, &dest, sha256, Expect::ImdbArchive, opts)?;
    Ok(dest)
}

/// Download the [`MINILM_FILES`] from `base_url` (pass [`MINILM_BASE_URL`])
/// into `<cache_dir>/all-MiniLM-L6-v2/`, each checked as [`Expect::of_minilm_file`]
/// says; returns that folder. `checksums`: optional `(file name, hex SHA-256)` pairs.
/// Whether the files make one model (the weights' shapes against config.json, the
/// tokenizer's ids against the vocabulary) is the model loader's check.
pub fn download_minilm(
    base_url: &str,
    cache_dir: &Path,
    checksums: &[(&str, &str)],
    opts: &DownloadOptions,
) -> Result<PathBuf, DownloadError> {
    let dir = cache_dir.join(MINILM_DIR);
    for file in MINILM_FILES {
        let sha = checksums.iter().find(|(f, _)| *f == file).map(|(_, s)| *s);
        download_checked(
            &join_url(base_url, file),
            &dir.join(file),
            sha,
            Expect::of_minilm_file(file),
            opts,
        )?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_urls() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(join_url("http://x/y/", "f.gz"), "http://x/y/f.gz");
        assert_eq!(join_url("http://x/y", "f.gz"), "http://x/y/f.gz");
    }

    #[test]
    fn sha256_of_known_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
