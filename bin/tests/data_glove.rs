//! GloVe parsing, the safetensors cache and the embedding matrix, on small
//! generated files.

use std::fs;
use std::io::Write;

use finetune_imdb::data::glove::{CacheStatus, Glove, GloveError};
use finetune_imdb::data::tokenize::{Vocab, VocabOptions};

const SMALL: &str = "the 0.1 0.2 0.3\n, -1 -2 -3\nfilm 1e-2 2.5 -0.5\nthe 9 9 9\n";

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn parse_txt_and_gz() {
    let tmp = tempfile::tempdir().unwrap();
    let txt = tmp.path().join("g.txt");
    fs::write(&txt, SMALL).unwrap();
    let gzp = tmp.path().join("g.txt.gz");
    fs::write(&gzp, gz(SMALL.as_bytes())).unwrap();
    for p in [&txt, &gzp] {
        let g = Glove::from_text(p, Some(3)).unwrap();
        assert_eq!((g.len(), g.dim(), g.notes.duplicates), (3, 3, 1));
        assert_eq!(g.get("the").unwrap(), [0.1, 0.2, 0.3]); // first occurrence wins
        assert_eq!(g.get("film").unwrap(), [0.01, 2.5, -0.5]);
        assert_eq!(g.index(","), Some(1));
        assert!(g.get("nope").is_none());
        assert!(!g.is_mapped());
    }
    // Words with spaces (glove.840B style) and CRLF line ends.
    let p = tmp.path().join("spaces.txt");
    fs::write(&p, "a 1 2\r\nnew york 3 4\r\n").unwrap();
    let g = Glove::from_text(&p, None).unwrap();
    assert_eq!(g.get("new york").unwrap(), [3.0, 4.0]);
}

/// A word line that is not UTF-8 (a Latin-1 `café`) is read, lossily, and said: its line
/// and count come with the table built from the text, not with a cache already built.
#[test]
fn lines_not_in_utf8_are_counted_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("latin1.txt");
    let mut text = b"the 0.1 0.2\n".to_vec();
    text.extend_from_slice(b"caf\xe9 1 2\nfilm 3 4\n\xe0 5 6\n");
    fs::write(&p, &text).unwrap();
    let g = Glove::from_text(&p, None).unwrap();
    assert_eq!((g.len(), g.notes.lossy_utf8, g.notes.first_lossy_line), (4, 2, Some(2)));
    assert_eq!(g.get("caf\u{fffd}").unwrap(), [1.0, 2.0]);
    let said = g.notes.warning(&p).expect("a warning");
    assert!(said.contains("latin1.txt: 2 line(s) were not valid UTF-8 (the first: line 2)"), "{said}");

    let cache = tmp.path().join("cache");
    let (built, status) = Glove::load_cached(&p, &cache, None).unwrap();
    assert_eq!((status, built.notes), (CacheStatus::Built, g.notes));
    let (hit, status) = Glove::load_cached(&p, &cache, None).unwrap();
    assert_eq!((status, hit.notes.warning(&p)), (CacheStatus::Hit, None));
}

#[test]
fn errors_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let p = write("short.txt", "a 1 2 3\nb 1 2\n");
    match Glove::from_text(&p, None).unwrap_err() {
        e @ GloveError::DimMismatch { line: 2, expected: 3, found: 2, .. } => {
            assert!(e.to_string().contains("short.txt:2"), "{e}")
        }
        e => panic!("{e:?}"),
    }
    let p = write("long.txt", "a 1 2 3\nb 1 2 3 4\n");
    assert!(matches!(
        Glove::from_text(&p, None).unwrap_err(),
        GloveError::DimMismatch { line: 2, expected: 3, found: 4, .. }
    ));
    let p = write("dim.txt", "a 1 2 3\n");
    assert!(matches!(
        Glove::from_text(&p, Some(50)).unwrap_err(),
        GloveError::DimMismatch { line: 1, expected: 50, found: 3, .. }
    ));
    let p = write("nan.txt", "a 1 2 3\nb 1 x 3\n");
    match Glove::from_text(&p, None).unwrap_err() {
        e @ GloveError::BadNumber { line: 2, .. } => {
            assert!(e.to_string().contains("nan.txt:2") && e.to_string().contains("\"x\""), "{e}")
        }
        e => panic!("{e:?}"),
    }
    // `nan`, `inf` and numbers past f32's range parse as floats, but are no vector
    for (i, bad) in ["nan", "-inf", "1e999"].iter().enumerate() {
        let p = write(&format!("inf{i}.txt"), &format!("a 1 2 3\nb 1 {bad} 3\n"));
        match Glove::from_text(&p, None).unwrap_err() {
            e @ GloveError::BadNumber { line: 2, .. } => {
                assert!(e.to_string().contains(&format!("inf{i}.txt:2: not a finite number")), "{e}")
            }
            e => panic!("{bad}: {e:?}"),
        }
    }
    let p = write("empty.txt", "\n\n");
    assert!(matches!(Glove::from_text(&p, None).unwrap_err(), GloveError::Empty { .. }));
    let p = write("word-only.txt", "a\n");
    assert!(matches!(Glove::from_text(&p, None).unwrap_err(), GloveError::DimMismatch { .. }));
    let e = Glove::from_text(&tmp.path().join("missing.txt"), None).unwrap_err();
    assert!(matches!(e, GloveError::Io { .. }) && e.to_string().contains("missing.txt"));
    // Truncated gzip.
    let z = gz(SMALL.repeat(50).as_bytes());
    let p = tmp.path().join("cut.txt.gz");
    fs::write(&p, &z[..z.len() / 2]).unwrap();
    assert!(matches!(Glove::from_text(&p, None).unwrap_err(), GloveError::Io { .. }));
}

#[test]
fn cache_round_trip_and_invalidation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("glove.test.3d.txt");
    fs::write(&src, SMALL).unwrap();
    let cache_dir = tmp.path().join("cache");
    let parsed = Glove::from_text(&src, None).unwrap();

    let (g, status) = Glove::load_cached(&src, &cache_dir, Some(3)).unwrap();
    assert_eq!(status, CacheStatus::Built);
    assert!(g.is_mapped());
    assert_eq!(g.words(), parsed.words());
    assert_eq!(g.vectors(), parsed.vectors());
    let cache = Glove::cache_path(&src, &cache_dir);
    assert_eq!(cache, cache_dir.join("glove.test.3d.safetensors"));
    // No temp files left behind.
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 1);

    let (g2, status) = Glove::load_cached(&src, &cache_dir, Some(3)).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(g2.vectors(), parsed.vectors());
    assert_eq!(g2.get("film").unwrap(), [0.01, 2.5, -0.5]);

    // A changed source (size differs) rebuilds the cache.
    fs::write(&src, format!("{SMALL}extra 7 8 9\n")).unwrap();
    let (g3, status) = Glove::load_cached(&src, &cache_dir, Some(3)).unwrap();
    assert_eq!(status, CacheStatus::Built);
    assert_eq!(g3.get("extra").unwrap(), [7.0, 8.0, 9.0]);
    // A wrong expected dimension is an error naming the source.
    assert!(matches!(
        Glove::load_cached(&src, &cache_dir, Some(4)).unwrap_err(),
        GloveError::DimMismatch { .. }
    ));
    // A corrupt cache is rebuilt by load_cached, reported by from_cache.
    fs::write(&cache, b"garbage").unwrap();
    let e = Glove::from_cache(&cache).unwrap_err();
    assert!(
        matches!(e, GloveError::CacheFile(_)) && e.to_string().contains(&*cache.to_string_lossy()),
        "{e}"
    );
    let (_, status) = Glove::load_cached(&src, &cache_dir, Some(3)).unwrap();
    assert_eq!(status, CacheStatus::Built);
}

#[test]
fn embedding_matrix_like_the_tutorial() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("g.txt");
    fs::write(&src, "<unk> 5 5 5\nthe 0.1 0.2 0.3\nfilm 1 2 3\n").unwrap();
    let g = Glove::from_text(&src, None).unwrap();
    let vocab = Vocab::build(["the the film zzz qqq"], &VocabOptions::default());
    assert_eq!(vocab.words(), ["<unk>", "<pad>", "the", "film", "qqq", "zzz"]);
    let m = g.embedding_matrix(&vocab, 7);
    assert_eq!((m.rows, m.dim, m.found, m.missing), (6, 3, 2, 2));
    assert_eq!(m.coverage(), 0.5);
    assert_eq!(m.row(0), [0.0; 3]);
    assert_eq!(m.row(1), [0.0; 3]);
    assert_eq!(m.row(2), [0.1, 0.2, 0.3]);
    assert_eq!(m.row(3), [1.0, 2.0, 3.0]);
    assert!(m.row(4).iter().all(|x| x.is_finite() && *x != 0.0));
    assert_ne!(m.row(4), m.row(5));
    assert_eq!(m, g.embedding_matrix(&vocab, 7));
    assert_ne!(m.data, g.embedding_matrix(&vocab, 8).data);
}
