//! The README and the book stand on their own: the README is short, every relative link in
//! them resolves inside the repository, none points outside it, and every chapter the book's
//! table of contents names exists. (`mdbook build docs` renders the book; this checks what it
//! links to without needing mdbook.)

use std::path::{Component, Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every Markdown file of the README and the book.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![repo().join("README.md")];
    walk(&repo().join("docs"), &mut out);
    out
}

/// The targets of the Markdown links `[text](target)` of `text`, outside code blocks and
/// code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans, where `](` is code, not a link.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            out.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn the_readme_is_short() {
    let n = std::fs::read_to_string(repo().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(n <= 200, "README.md has {n} lines (at most 200)");
}

#[test]
fn every_link_resolves_inside_the_repository() {
    let root = normal(&repo().canonicalize().unwrap());
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with('#') {
                continue;
            }
            let file = link.split('#').next().unwrap();
            if file.is_empty() {
                continue;
            }
            let target = normal(&page.parent().unwrap().canonicalize().unwrap().join(file));
            checked += 1;
            if !target.starts_with(&root) {
                bad.push(format!(
                    "{}: `{link}` points outside the repository",
                    page.display()
                ));
            } else if !target.exists() {
                bad.push(format!("{}: `{link}` does not exist", page.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(
        checked > 50,
        "only {checked} links found: is the link parser broken?"
    );
}

#[test]
fn the_books_contents_name_existing_chapters() {
    let summary = std::fs::read_to_string(repo().join("docs/SUMMARY.md")).unwrap();
    let chapters = links(&summary);
    assert!(chapters.len() > 10, "{chapters:?}");
    for c in chapters {
        assert!(
            repo().join("docs").join(&c).is_file(),
            "SUMMARY.md names {c}, not there"
        );
    }
}

#[test]
fn the_link_parser_reads_links_and_skips_code() {
    let text = "see [a](x.md#h) and `[b](not.md)`\n```\n[c](no.md)\n```\n[d](../y.md)";
    assert_eq!(links(text), ["x.md#h", "../y.md"]);
}
