//! The one-way rule of `host/src/lib.rs`: every `crate::…` path in the library's source names a
//! module of the same stage or of a stage declared before it in [`telemetry_server::STAGES`].
//! Comments are skipped (doc links may point anywhere), and so are unit tests (a file's code from
//! its first `#[cfg(test)]` line on): they may use later stages to build fixtures.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use telemetry_server::STAGES;

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`convert/live.rs` → `convert`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// The modules named by `crate::NAME` in the code (not the comments) of `text`, with line
/// numbers; `crate::{a::X, b}` names `a` and `b`, across lines too.
fn crate_edges(text: &str) -> Vec<(usize, String)> {
    // Comments blanked, line breaks kept (so offsets map back to line numbers).
    let code: String = text
        .lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n");
    let line_at = |offset: usize| code[..offset].matches('\n').count() + 1;
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut edges = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue; // `my_crate::`, another crate
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // The items at the group's top level: the first name of each.
            let item = |start: usize, end: usize| {
                let text = &group[start..end];
                let trimmed = text.trim_start();
                let name = ident(trimmed);
                let offset = from + 1 + start + (text.len() - trimmed.len());
                (!name.is_empty()).then(|| (line_at(offset), name))
            };
            let (mut depth, mut item_start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        edges.extend(item(item_start, i));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        edges.extend(item(item_start, i));
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                edges.push((line_at(start), name));
            }
        }
    }
    edges
}

/// The stage index of each module.
fn stage_of(module: &str) -> Option<usize> {
    STAGES.iter().position(|stage| stage.contains(&module))
}

#[test]
fn every_module_is_in_a_declared_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = STAGES.iter().flat_map(|s| s.iter().copied()).collect();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    assert!(!modules.is_empty(), "no `pub mod` found in lib.rs");
    let missing: Vec<_> = modules
        .iter()
        .filter(|m| !declared.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules of lib.rs missing from telemetry_server::STAGES: {missing:?}"
    );
    let stale: Vec<_> = declared.iter().filter(|m| !modules.contains(**m)).collect();
    assert!(
        stale.is_empty(),
        "STAGES names modules lib.rs does not declare: {stale:?}"
    );
}

#[test]
fn imports_follow_the_stage_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut against = Vec::new();
    for file in &files {
        let from = module_of(&src, file);
        // The binary's own modules (`main.rs`, `cli/`) reach the library as `telemetry_server::`.
        let Some(from_stage) = stage_of(&from) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let text = match text.find("\n#[cfg(test)]") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        for (line, to) in crate_edges(text) {
            checked += 1;
            if to == from {
                continue;
            }
            let to_stage = stage_of(&to)
                .unwrap_or_else(|| panic!("{}:{line}: crate::{to} is in no stage", file.display()));
            if to_stage >= from_stage {
                against.push(format!(
                    "{}:{line}: {from} (stage {from_stage}) uses crate::{to} (stage {to_stage})",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} crate:: paths found: is the scan broken?"
    );
    assert!(
        against.is_empty(),
        "{} imports against the stage order of telemetry_server::STAGES:\n{}",
        against.len(),
        against.join("\n")
    );
}

#[test]
fn the_scan_sees_use_lists_and_paths_but_not_comments() {
    let text = "use crate::{rawlog, storage::{DataDir, Schema}};\n// crate::api in a comment\nlet x = crate::convert::f(); // crate::jobs\nmy_crate::ingest::g();\nuse crate::{\n    export::S3Config,\n    histograms,\n};";
    let edges = crate_edges(text);
    let names: Vec<&str> = edges.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        names,
        ["rawlog", "storage", "convert", "export", "histograms"]
    );
    let lines: Vec<usize> = edges.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [1, 1, 3, 6, 7]);
}
