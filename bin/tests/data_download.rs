//! Downloads from a tiny local HTTP/1.1 server on 127.0.0.1.

mod data_common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use data_common::{fixture_files, tar_gz_bytes};
use finetune_imdb::data::download::{
    download_file, download_imdb, download_minilm, sha256_file, DownloadError, DownloadOptions, Fetched,
    IMDB_ARCHIVE, MINILM_FILES,
};
use finetune_imdb::data::imdb::{read_imdb, Split};

/// A route: body and the Content-Length to announce (may lie), and how long to hold the
/// connection open, silent, after the body before closing it.
#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    content_length: usize,
    stall: Duration,
}

impl Route {
    fn ok(body: Vec<u8>) -> Route {
        Route { content_length: body.len(), body, stall: Duration::ZERO }
    }
}

/// Serve at most `max_requests` requests (or until 20 s pass), then stop.
/// Returns the base URL and the thread, which yields the paths requested.
fn serve(routes: HashMap<String, Route>, max_requests: usize) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.len() < max_requests && Instant::now() < deadline {
            let (stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" || header == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let mut stream = reader.into_inner();
            let mut stall = Duration::ZERO;
            let response = match routes.get(&path) {
                Some(r) => {
                    stall = r.stall;
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                        r.content_length
                    )
                    .into_bytes();
                    head.extend_from_slice(&r.body);
                    head
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
            std::thread::sleep(stall);
            seen.push(path);
        }
        seen
    });
    (base, handle)
}

fn quiet() -> DownloadOptions {
    DownloadOptions {
        progress: false,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    fs::write(&p, bytes).unwrap();
    sha256_file(&p).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn imdb_archive_download_checksum_and_cache() {
    let archive = tar_gz_bytes(&fixture_files());
    let sha = sha_hex(&archive);
    let mut routes = HashMap::new();
    routes.insert(format!("/data/{IMDB_ARCHIVE}"), Route::ok(archive.clone()));
    // Requests: good download, bad-checksum download, 404.
    let (base, server) = serve(routes, 3);
    let base_url = format!("{base}/data");
    let cache = tempfile::tempdir().unwrap();

    let path = download_imdb(&base_url, cache.path(), Some(&sha), &quiet()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), archive);
    assert_eq!(files_in(cache.path()), [IMDB_ARCHIVE]);
    let data = read_imdb(&path, &[Split::Train, Split::Test]).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60, 4));
    // Present and matching: no request.
    assert_eq!(
        download_file(&format!("{base_url}/{IMDB_ARCHIVE}"), &path, Some(&sha), &quiet()).unwrap(),
        Fetched::Cached
    );

    // Checksum mismatch: reported, and no (partial) file left.
    let other = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let e = download_imdb(&base_url, other.path(), Some(&wrong), &quiet()).unwrap_err();
    match &e {
        DownloadError::ChecksumMismatch { expected, actual, url } => {
            assert_eq!((expected, actual), (&wrong, &sha));
            assert!(url.ends_with(IMDB_ARCHIVE));
        }
        e => panic!("{e:?}"),
    }
    assert!(files_in(other.path()).is_empty(), "{:?}", files_in(other.path()));

    let e = download_file(&format!("{base}/missing.tar.gz"), &other.path().join("m"), None, &quiet())
        .unwrap_err();
    assert!(matches!(e, DownloadError::Status { status: 404, .. }), "{e:?}");
    assert!(files_in(other.path()).is_empty());

    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// Without a checksum the archive itself is checked: an error page served with status 200
/// is refused and removed, and a truncated archive left in the cache (reported as cached
/// before) is fetched again.
#[test]
fn imdb_archive_is_checked_without_a_checksum() {
    let archive = tar_gz_bytes(&fixture_files());
    let mut routes = HashMap::new();
    routes.insert(format!("/data/{IMDB_ARCHIVE}"), Route::ok(archive.clone()));
    routes.insert(format!("/html/{IMDB_ARCHIVE}"), Route::ok(b"<html><body>Moved</body></html>".to_vec()));
    // Requests: the error page, then the archive again for the truncated copy.
    let (base, server) = serve(routes, 2);

    let cache = tempfile::tempdir().unwrap();
    let e = download_imdb(&format!("{base}/html"), cache.path(), None, &quiet()).unwrap_err();
    assert!(matches!(e, DownloadError::Unusable { what: "the IMDB archive", .. }), "{e:?}");
    assert!(e.to_string().contains(IMDB_ARCHIVE), "{e}");
    assert!(files_in(cache.path()).is_empty(), "{:?}", files_in(cache.path()));

    let cache = tempfile::tempdir().unwrap();
    fs::write(cache.path().join(IMDB_ARCHIVE), &archive[..archive.len() / 2]).unwrap();
    let path = download_imdb(&format!("{base}/data"), cache.path(), None, &quiet()).unwrap();
    assert_eq!(fs::read(&path).unwrap(), archive, "fetched again, whole");

    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn short_body_is_an_error_and_leaves_nothing() {
    let mut routes = HashMap::new();
    routes.insert(
        "/short.bin".to_owned(),
        Route { body: vec![7u8; 1000], content_length: 5000, stall: Duration::ZERO },
    );
    let (base, server) = serve(routes, 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("short.bin");
    let e = download_file(&format!("{base}/short.bin"), &dest, None, &quiet()).unwrap_err();
    eprintln!("short body: {e}");
    assert!(
        matches!(
            e,
            DownloadError::SizeMismatch { expected: 5000, got: 1000, .. } | DownloadError::Transport { .. }
        ),
        "{e:?}"
    );
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    server.join().unwrap();
}

#[test]
fn a_silent_server_times_out_and_leaves_nothing() {
    // 1000 bytes of the 5000 announced, then silence: the read timeout ends the wait
    let mut routes = HashMap::new();
    let stall = Duration::from_secs(2);
    routes.insert("/slow.bin".to_owned(), Route { body: vec![7u8; 1000], content_length: 5000, stall });
    let (base, server) = serve(routes, 1);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("slow.bin");
    let opts = DownloadOptions { read_timeout: Duration::from_millis(300), ..quiet() };
    let start = Instant::now();
    let e = download_file(&format!("{base}/slow.bin"), &dest, None, &opts).unwrap_err();
    let waited = start.elapsed();
    eprintln!("silent server, after {waited:?}: {e}");
    match &e {
        DownloadError::Transport { message, .. } => {
            assert!(message.starts_with("after 1000 bytes"), "{message}")
        }
        e => panic!("{e:?}"),
    }
    assert!(waited < stall, "gave up after {waited:?}, not before the server's {stall:?} of silence ended");
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    server.join().unwrap();
}

/// A safetensors file of one 2-element f32 tensor `w`.
fn tiny_safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&[0u8; 8]);
    out
}

/// Contents of each MiniLM file that pass their checks: JSON objects, a safetensors
/// file, text.
fn minilm_contents(file: &str) -> Vec<u8> {
    match file {
        "model.safetensors" => tiny_safetensors(),
        "vocab.txt" => b"[PAD]\n[UNK]\n".to_vec(),
        f => format!("{{\"file\": \"{f}\"}}").into_bytes(),
    }
}

#[test]
fn minilm_files() {
    let mut routes = HashMap::new();
    for f in MINILM_FILES {
        routes.insert(format!("/m/resolve/main/{f}"), Route::ok(minilm_contents(f)));
    }
    let (base, server) = serve(routes, MINILM_FILES.len());
    let cache = tempfile::tempdir().unwrap();
    let sha = sha_hex(&minilm_contents("config.json"));
    let dir =
        download_minilm(&format!("{base}/m/resolve/main/"), cache.path(), &[("config.json", &sha)], &quiet())
            .unwrap();
    assert_eq!(dir, cache.path().join("all-MiniLM-L6-v2"));
    let mut want: Vec<String> = MINILM_FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(files_in(&dir), want);
    assert_eq!(fs::read(dir.join("vocab.txt")).unwrap(), minilm_contents("vocab.txt"));
    assert_eq!(server.join().unwrap().len(), MINILM_FILES.len());
}

/// No checksum is published for the MiniLM files, so each is checked by its content: a
/// cached folder left half-written by a failed download (a truncated model, an error page
/// as the vocabulary) has those files fetched again and the good ones kept; an error page
/// served with status 200 in place of the weights is refused, named and removed.
#[test]
fn minilm_files_are_checked_without_checksums() {
    let html = b"<!DOCTYPE html><html><body>Not here</body></html>".to_vec();
    let mut routes = HashMap::new();
    for f in MINILM_FILES {
        routes.insert(format!("/m/{f}"), Route::ok(minilm_contents(f)));
        let page = if f == "model.safetensors" { html.clone() } else { minilm_contents(f) };
        routes.insert(format!("/html/{f}"), Route::ok(page));
    }
    // Requests: the two damaged cached files, then the error page run up to the weights.
    let (base, server) = serve(routes, 2 + 3);

    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("all-MiniLM-L6-v2");
    fs::create_dir_all(&dir).unwrap();
    for f in MINILM_FILES {
        fs::write(dir.join(f), minilm_contents(f)).unwrap();
    }
    let whole = tiny_safetensors();
    fs::write(dir.join("model.safetensors"), &whole[..whole.len() - 3]).unwrap();
    fs::write(dir.join("vocab.txt"), &html).unwrap();
    download_minilm(&format!("{base}/m"), cache.path(), &[], &quiet()).unwrap();
    for f in MINILM_FILES {
        assert_eq!(fs::read(dir.join(f)).unwrap(), minilm_contents(f), "{f}");
    }

    let cache = tempfile::tempdir().unwrap();
    let e = download_minilm(&format!("{base}/html"), cache.path(), &[], &quiet()).unwrap_err();
    match &e {
        DownloadError::Unusable { url, what, .. } => {
            assert!(url.ends_with("/html/model.safetensors") && *what == "a safetensors file", "{e}")
        }
        e => panic!("{e:?}"),
    }
    let dir = cache.path().join("all-MiniLM-L6-v2");
    assert_eq!(files_in(&dir), ["config.json", "tokenizer.json"], "the weights' page removed");

    let seen = server.join().unwrap();
    assert_eq!(
        seen,
        [
            "/m/model.safetensors",
            "/m/vocab.txt",
            "/html/config.json",
            "/html/tokenizer.json",
            "/html/model.safetensors"
        ]
    );
}
