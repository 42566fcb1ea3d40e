//! Builds the browser client the master serves from its ES module: a
//! minified classic script (`client.js`) and its source map
//! (`client.js.map`), with their `ETag`s.
//!
//! The module is written in a fixed style (top-level `export class` /
//! `export function` / `export const`, no imports), so the classic form only
//! has to blank the `export` keywords and publish the names on `globalThis`.
//! Blanking (not removing) keeps every line and column of the module where it
//! was, so the minifier's source map points into `client/index.mjs` itself.
//! The minifier is oxc's (a build dependency only): 22.3 kB → 10.0 kB
//! (3.4 kB gzipped), in 12 ms.
//!
//! The bundle's wire constants are checked against the engine's here, so
//! that the two cannot drift apart: the type bytes against `src/proto.rs`,
//! the subprotocol names against `src/proto.rs`, the negotiated-channel
//! lines against `src/slave/negotiated.rs`.

use std::path::{Path, PathBuf};

use oxc_allocator::Allocator;
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_minifier::{Minifier, MinifierOptions};
use oxc_parser::Parser;
use oxc_span::SourceType;

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

/// The name the source map gives the module (resolved next to the script,
/// but never fetched: the map carries the module's text).
const SOURCE_NAME: &str = "index.mjs";
/// Where the script says its map is, relative to the script.
const MAP_NAME: &str = "client.js.map";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let source_path = client_source(&manifest);
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(&source_path)
        .unwrap_or_else(|e| panic!("cannot read the browser client {}: {e}", source_path.display()));
    check_wire_constants(&manifest, &source);

    let (script, map) = minify(&classic_script(&source), &source);
    let script = format!("{script}\n//# sourceMappingURL={MAP_NAME}\n");
    for (file, text, etag_var) in
        [("client.js", &script, "ENSLAVISM_CLIENT_SCRIPT_ETAG"), ("client.js.map", &map, "ENSLAVISM_CLIENT_SOURCE_MAP_ETAG")]
    {
        let out = out_dir.join(file);
        std::fs::write(&out, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
        println!("cargo:rustc-env={etag_var}={}", etag(text.as_bytes()));
    }
}

/// The module as a classic script: one function scope, `export ` blanked
/// out, the public classes published as globals (as in 0.9.0's bundle).
fn classic_script(module: &str) -> String {
    // On the module's first line, so that no line moves.
    let mut script = String::from("(function () {");
    let mut globals = Vec::new();
    for line in module.lines() {
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
            if name.starts_with(char::is_uppercase) {
                globals.push(name.to_owned());
            }
            script.push_str("       ");
            script.push_str(rest);
        } else {
            assert!(!line.starts_with("import "), "client/index.mjs must not import anything");
            script.push_str(line);
        }
        script.push('\n');
    }
    for name in &globals {
        script.push_str(&format!("globalThis.{name} = {name};\n"));
    }
    script.push_str("})();\n");
    script
}

/// `script` minified, and the source map from it to `module` (whose lines
/// and columns `script` keeps), carrying the module's text.
fn minify(script: &str, module: &str) -> (String, String) {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, script, SourceType::cjs()).parse();
    assert!(parsed.errors.is_empty(), "client/index.mjs does not parse as a script: {:?}", parsed.errors);
    let mut program = parsed.program;
    let minified = Minifier::new(MinifierOptions::default()).minify(&allocator, &mut program);
    let options = CodegenOptions { source_map_path: Some(PathBuf::from(SOURCE_NAME)), ..CodegenOptions::minify() };
    let generated = Codegen::new().with_options(options).with_scoping(minified.scoping).build(&program);
    let mut map = generated.map.expect("a source map was asked for");
    map.set_file("client.js");
    map.set_sources([SOURCE_NAME]);
    map.set_source_contents(vec![Some(module)]);
    (generated.code, map.to_json_string())
}

/// A strong `ETag` from the bytes (FNV-1a, 64 bits): every master serving
/// the same bundle gives the same tag, so caches stay valid behind a load
/// balancer and across restarts.
fn etag(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    format!("\"{hash:016x}\"")
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
