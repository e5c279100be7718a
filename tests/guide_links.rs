//! The guide cannot silently rot: every code reference in `docs/guide/` and
//! `docs/guide.zh-CN/` must name a file that exists and, with `#item`, an item
//! defined in it. The convention (stated at the top of each guide's README):
//!
//! - a Markdown link to a relative path, `[text](../../autograd/src/tape.rs)`,
//!   resolved from the Markdown file's folder; GitHub follows it;
//! - an inline code span holding a path from the repository root,
//!   `` `autograd/src/tape.rs` ``;
//! - either one may end in `#item`: `autograd/src/ops/loss.rs#cross_entropy`. The
//!   item must be defined in the file: `fn item`, `struct item`, `enum item`,
//!   `trait item`, `const item`, `static item`, `type item`, `mod item` or
//!   `macro_rules! item`; in a CUDA source (`.cu`, `.cuh`), also `#define item` or a
//!   `__global__`/`__device__` function `item(…)`: `kernels/cuda/common.cuh#block_sum`.
//!
//! Web links (`http…`) and in-page anchors (`#…`) are not checked.

use std::fs;
use std::path::{Path, PathBuf};

const GUIDES: [&str; 2] = ["docs/guide", "docs/guide.zh-CN"];
const KINDS: [&str; 9] = ["fn", "struct", "enum", "trait", "const", "static", "type", "mod", "macro_rules!"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One reference: where it was written and what it names.
#[derive(Debug)]
struct Reference {
    source: String,
    line: usize,
    file: PathBuf,
    item: Option<String>,
}

/// Markdown link targets `](target)` on a line.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find(')') {
            out.push(rest[..j].trim());
            rest = &rest[j..];
        }
    }
    out
}

/// Inline code spans that look like repository paths (`dir/file.ext`, optionally `#item`).
fn code_paths(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            let path = s.split('#').next().unwrap_or("");
            path.contains('/')
                && !path.contains(' ')
                && !path.starts_with("http")
                && !path.starts_with("../shared")
                && !path.starts_with("runs/")
                && !path.starts_with('.') // `./x`, `../x`: commands' arguments, not repo paths
                && [".rs", ".toml", ".md", ".sh", ".py", ".cu", ".cuh"].iter().any(|e| path.ends_with(e))
                || path == ".ci/run"
        })
        .collect()
}

fn split_item(target: &str) -> (&str, Option<String>) {
    match target.split_once('#') {
        Some((p, item)) => (p, Some(item.to_string())),
        None => (target, None),
    }
}

fn references(md: &Path) -> Vec<Reference> {
    let text = fs::read_to_string(md).unwrap_or_else(|e| panic!("reading {}: {e}", md.display()));
    let source = md.strip_prefix(root()).unwrap_or(md).display().to_string();
    let mut out = Vec::new();
    let mut in_fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        for t in link_targets(line) {
            if t.starts_with("http") || t.starts_with('#') || t.starts_with("mailto:") {
                continue;
            }
            let (p, item) = split_item(t);
            let file = md.parent().unwrap().join(p);
            out.push(Reference { source: source.clone(), line: n + 1, file, item });
        }
        for t in code_paths(line) {
            let (p, item) = split_item(t);
            out.push(Reference { source: source.clone(), line: n + 1, file: root().join(p), item });
        }
    }
    out
}

fn defines(code: &str, item: &str) -> bool {
    code.lines().any(|l| {
        let words: Vec<&str> = l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!')).collect();
        words.windows(2).any(|w| KINDS.contains(&w[0]) && w[1] == item)
    })
}

/// A CUDA source defines `item` as Rust does (`struct item`, `enum item`), as a macro
/// (`#define item`), or as a function: a line that says `__global__` or `__device__` and
/// `item(`.
fn defines_cuda(code: &str, item: &str) -> bool {
    let call = format!(" {item}(");
    defines(code, item)
        || code.lines().any(|l| {
            let words: Vec<&str> =
                l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#')).collect();
            words.windows(2).any(|w| w[0] == "#define" && w[1] == item)
                || ((l.contains("__global__") || l.contains("__device__")) && l.contains(&call))
        })
}

fn check(r: &Reference) -> Option<String> {
    let at = format!("{}:{}", r.source, r.line);
    if !r.file.exists() {
        return Some(format!("{at}: {} does not exist", r.file.display()));
    }
    let item = r.item.as_ref()?;
    if r.file.is_dir() {
        return Some(format!("{at}: #{item} on a folder ({})", r.file.display()));
    }
    let code = fs::read_to_string(&r.file).ok()?;
    let cuda = r.file.extension().is_some_and(|e| e == "cu" || e == "cuh");
    if if cuda { defines_cuda(&code, item) } else { defines(&code, item) } {
        None
    } else {
        let kinds = if cuda {
            "#define, __global__/__device__ function, struct"
        } else {
            "fn, struct, enum, trait, const, …"
        };
        Some(format!("{at}: {} defines no `{item}` ({kinds})", r.file.display()))
    }
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_code_reference_in_the_guide_exists() {
    let mut bad = Vec::new();
    let mut count = 0;
    for g in GUIDES {
        let files = markdown_files(&root().join(g));
        assert!(files.len() >= 7, "{g}: expected the README and the chapters, found {}", files.len());
        for md in files {
            for r in references(&md) {
                count += 1;
                bad.extend(check(&r));
            }
        }
    }
    assert!(count > 100, "only {count} code references found: is the parser still matching the guide?");
    assert!(bad.is_empty(), "{} broken code references in the guide:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn both_languages_have_the_same_chapters() {
    let names = |g: &str| -> Vec<String> {
        markdown_files(&root().join(g))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into())
            .collect()
    };
    assert_eq!(names(GUIDES[0]), names(GUIDES[1]));
}

#[test]
fn the_checker_catches_a_missing_file_and_a_missing_item() {
    let tmp = root().join("target").join("guide_links_selftest");
    fs::create_dir_all(&tmp).unwrap();
    let md = tmp.join("x.md");
    fs::write(
        &md,
        "[ok](../../autograd/src/tape.rs#backward) `autograd/src/ops/loss.rs#cross_entropy`\n\
         [gone](../../autograd/src/nope.rs) `autograd/src/tape.rs#no_such_item`\n\
         ```\nnot checked: `autograd/src/nope.rs`\n```\n",
    )
    .unwrap();
    let refs = references(&md);
    assert_eq!(refs.len(), 4, "{refs:?}");
    let errors: Vec<String> = refs.iter().filter_map(check).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("nope.rs does not exist"), "{}", errors[0]);
    assert!(errors[1].contains("no `no_such_item`"), "{}", errors[1]);
}

#[test]
fn cuda_sources_are_checked_too() {
    let tmp = root().join("target").join("guide_links_selftest_cuda");
    fs::create_dir_all(&tmp).unwrap();
    let md = tmp.join("x.md");
    fs::write(
        &md,
        "`kernels/cuda/common.cuh#GRID_STRIDE` `kernels/cuda/common.cuh#block_sum` \
         [tiles](../../kernels/cuda/gemm.cu#gemm_tiled) `kernels/cuda/gemm.cu#GemmStrides`\n\
         `kernels/cuda/gemm.cu#gemm_fast` `kernels/cuda/nope.cu`\n",
    )
    .unwrap();
    let refs = references(&md);
    assert_eq!(refs.len(), 6, "{refs:?}");
    let errors: Vec<String> = refs.iter().filter_map(check).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("no `gemm_fast`"), "{}", errors[0]);
    assert!(errors[1].contains("nope.cu does not exist"), "{}", errors[1]);
}
