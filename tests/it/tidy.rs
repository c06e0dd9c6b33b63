//! Architecture invariants (ARCHITECTURE.md), checked as text so they cannot silently rot.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// parse and correlate are pure: no I/O, no clock, no threads, no async runtime.
#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "std::fs",
        "std::io",
        "std::net",
        "std::thread",
        "std::process",
        "SystemTime",
        "Instant",
        "Utc::now",
        "Local::now",
        "tokio",
        "sqlx",
        "axum",
        "notify",
        "prometheus",
        "println!",
        "eprintln!",
    ];
    for stage in ["parse", "correlate"] {
        let mut files = Vec::new();
        rust_files(&root.join(stage), &mut files);
        assert!(!files.is_empty());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for word in forbidden {
                assert!(!text.contains(word), "{} mentions {word}", f.display());
            }
        }
    }
}

/// sources hand bytes on; they never parse.
#[test]
fn sources_never_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sources");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("crate::parse") && !text.contains("serde_json"),
            "{} parses",
            f.display()
        );
    }
}

/// anyhow belongs to the CLI edge only.
#[test]
fn anyhow_only_in_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let in_cli = f.components().any(|c| c.as_os_str() == "cli") || f.ends_with("main.rs");
        assert!(
            in_cli || !text.contains("anyhow"),
            "{} uses anyhow",
            f.display()
        );
    }
}

/// Each stage owns its config and error types; `config` only assembles them, and only the
/// CLI edge (and `main.rs`) reads it: no import loop through it.
#[test]
fn only_the_cli_imports_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(&root).unwrap();
        let allowed = rel.starts_with("cli")
            || rel.starts_with("config")
            || rel == Path::new("config.rs")
            || rel == Path::new("main.rs");
        assert!(
            allowed || !text.contains("crate::config"),
            "{} imports crate::config",
            f.display()
        );
    }
}

/// `ARCHITECTURE.md`'s codemap names every module as it is: each file under `src/` (tests
/// and the crate roots aside) is named in the codemap entry of its top-level module — the
/// bullets that begin with `` `src/<top>`` — by its file name (`follow.rs`), or, for a
/// `mod.rs`, by its directory (`file/`). A module added, moved or renamed without its line
/// in the codemap fails here.
#[test]
fn the_codemap_names_every_module() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(manifest.join("ARCHITECTURE.md")).unwrap();
    let codemap = doc
        .split("\n## Codemap")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("ARCHITECTURE.md has a ## Codemap section");
    // Bullets (a line starting with "- ", continued by indented lines), keyed by the path in
    // their first backticks.
    let mut bullets: Vec<(String, String)> = Vec::new();
    for line in codemap.lines() {
        if let Some(rest) = line.strip_prefix("- ") {
            let key = rest
                .strip_prefix('`')
                .and_then(|r| r.split('`').next())
                .unwrap_or("")
                .to_owned();
            bullets.push((key, rest.to_owned()));
        } else if let Some((_, text)) = bullets.last_mut() {
            text.push(' ');
            text.push_str(line.trim());
        }
    }
    let root = manifest.join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut missing = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" || rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
            continue;
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let entry: String = bullets
            .iter()
            .filter(|(key, _)| {
                key.strip_prefix("src/").is_some_and(|k| {
                    k == top
                        || k.strip_prefix(top)
                            .is_some_and(|r| r.starts_with('/') || r.starts_with(".rs"))
                })
            })
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let named = if name == "mod.rs" {
            let dir = rel.parent().unwrap();
            let last = dir.file_name().unwrap().to_string_lossy();
            !entry.is_empty()
                && (dir.parent() == Some(Path::new("")) || entry.contains(&format!("{last}/")))
        } else {
            entry.contains(&name)
        };
        if !named {
            missing.push(format!("src/{}", rel.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "modules the codemap does not name: {missing:?}"
    );
}
