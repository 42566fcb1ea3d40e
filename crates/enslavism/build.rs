//! Builds the classic-script form of the browser client from its ES module,
//! so that the master can serve it from the binary.
//!
//! The module is written in a fixed style (top-level `export class` /
//! `export function` / `export const`, no imports), so the classic form only
//! has to drop the `export` keywords and publish the names on `globalThis`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source_path = manifest.join("../../client/index.mjs");
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(&source_path)
        .unwrap_or_else(|e| panic!("cannot read the browser client {}: {e}", source_path.display()));

    let mut body = String::with_capacity(source.len() + 256);
    let mut globals = Vec::new();
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("export ") {
            assert!(
                !rest.starts_with('{') && !rest.starts_with("default"),
                "client/index.mjs: use `export class|function|const NAME` only, not `{line}`"
            );
            let name = rest
                .split_whitespace()
                .nth(1)
                .map(|n| n.trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')))
                .unwrap_or_default();
            if !name.is_empty() {
                globals.push(name.to_owned());
            }
            body.push_str(rest);
        } else {
            assert!(!line.starts_with("import "), "client/index.mjs must not import anything");
            body.push_str(line);
        }
        body.push('\n');
    }

    let mut script = String::from("/* enslavism browser client: classic-script build of client/index.mjs */\n(function () {\n");
    script.push_str(&body);
    // Only the public classes become globals, as in 0.9.0's bundle.
    for name in globals.iter().filter(|n| n.chars().next().is_some_and(char::is_uppercase)) {
        script.push_str(&format!("globalThis.{name} = {name};\n"));
    }
    script.push_str("})();\n");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("client.js");
    std::fs::write(&out, script).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
