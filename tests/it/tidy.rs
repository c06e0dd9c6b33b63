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
