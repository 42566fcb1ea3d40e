//! Builds the classic-script form of the browser client from its ES module,
//! so that the master can serve it from the binary.
//!
//! The module is written in a fixed style (top-level `export class` /
//! `export function` / `export const`, no imports), so the classic form only
//! has to drop the `export` keywords and publish the names on `globalThis`.
//!
//! The bundle's wire constants are checked against the engine's here, so
//! that the two cannot drift apart: the type bytes against `src/proto.rs`,
//! the subprotocol names against `src/proto.rs`, the negotiated-channel
//! lines against `src/slave/negotiated.rs`.

use std::path::{Path, PathBuf};

/// Where the module is: `client/index.mjs` in the crate (a link to the
/// package's top-level `client/`, which `cargo package` turns into a copy),
/// or, in the npm package (which keeps no links), at the top level itself.
fn client_source(manifest: &Path) -> PathBuf {
    let in_crate = manifest.join("client/index.mjs");
    if in_crate.exists() {
        in_crate
    } else {
        manifest.join("../../client/index.mjs")
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source_path = client_source(&manifest);
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(&source_path)
        .unwrap_or_else(|e| panic!("cannot read the browser client {}: {e}", source_path.display()));
    check_wire_constants(&manifest, &source);

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

/// Panics (failing the build) where the bundle's wire constants differ from the engine's.
fn check_wire_constants(manifest: &Path, bundle: &str) {
    let read = |relative: &str| {
        let path = manifest.join(relative);
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    };
    let proto = read("src/proto.rs");
    // The bundle's `const TYPE = Object.freeze({ addSlaves: 1, … })`.
    let table = bundle
        .split_once("const TYPE = Object.freeze({")
        .and_then(|(_, rest)| rest.split_once("})"))
        .map(|(table, _)| table)
        .expect("client/index.mjs: no `const TYPE = Object.freeze({…})` table");
    for entry in table.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry.split_once(':').unwrap_or_else(|| panic!("client/index.mjs: TYPE entry {entry:?}"));
        let mut rust_name = name.trim().to_owned();
        rust_name[..1].make_ascii_uppercase();
        let declared = format!("    {rust_name} = {},", value.trim());
        assert!(
            proto.lines().any(|l| l == declared),
            "client/index.mjs: TYPE.{} = {} but src/proto.rs has no `{}`",
            name.trim(),
            value.trim(),
            declared.trim()
        );
    }
    let negotiated = read("src/slave/negotiated.rs");
    for (js, rust, file, text) in [
        ("NEGOTIATED_CHANNEL_ATTRIBUTE", "CHANNEL_ATTRIBUTE", "src/slave/negotiated.rs", &negotiated),
        ("NEGOTIATED_SUPPORT_LINE", "SUPPORT_LINE", "src/slave/negotiated.rs", &negotiated),
        ("SUBPROTOCOL_V1", "SUBPROTOCOL_V1", "src/proto.rs", &proto),
        ("SUBPROTOCOL_V2", "SUBPROTOCOL_V2", "src/proto.rs", &proto),
    ] {
        let js_value = bundle
            .lines()
            .find_map(|l| l.strip_prefix(&format!("const {js} = '")))
            .and_then(|rest| rest.strip_suffix("';"))
            .unwrap_or_else(|| panic!("client/index.mjs: no `const {js} = '…';`"));
        let rust_decl = format!("const {rust}: &str = \"{js_value}\";");
        assert!(
            text.lines().any(|l| l.ends_with(&rust_decl)),
            "client/index.mjs: {js} is {js_value:?}, but {file} has no `{rust_decl}`"
        );
    }
}
