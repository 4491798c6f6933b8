//! docs/json-schema.md and docs/portolan.schema.json stay true to the writer: the example in
//! the page is what the writer produces, and the schema names exactly the fields written.
//! (Full validation with a JSON Schema validator is in tests/external.rs.)

mod common;

use std::path::PathBuf;

use common::*;
use portolan_model::*;
use portolan_report::*;
use serde_json::Value;

fn docs(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first fenced block of `lang` after the heading `## Example`.
fn example_block(page: &str, lang: &str) -> String {
    let from = page.find("## Example").expect("no Example section");
    let rest = &page[from..];
    let open = format!("```{lang}\n");
    let start = rest.find(&open).expect("no block") + open.len();
    let len = rest[start..].find("```").expect("unclosed block");
    rest[start..start + len].to_string()
}

/// The run the page's example shows.
fn example_run() -> ScanRun {
    let mut run = sample_run();
    run.args = "portolan -sS -sV --reason -oJ out.json 192.0.2.9-10".into();
    let h = &mut run.hosts[0];
    h.ports.retain(|p| p.portid == 22 || p.portid == 443);
    let ep = &mut h.extraports[0];
    ep.count = 998;
    ep.reasons[0].count = 998;
    ep.reasons[0].port_list = (1..=1000).filter(|p| *p != 22 && *p != 443).collect();
    h.addresses.truncate(1);
    h.hostnames.remove(0);
    run
}

#[test]
fn page_example_is_what_the_writer_writes() {
    let page = docs("json-schema.md");
    let shown: Value = serde_json::from_str(&example_block(&page, "json")).unwrap();
    let written: Value = serde_json::from_str(&json_of(&example_run())).unwrap();
    assert_eq!(shown, written, "update the example in docs/json-schema.md");
    assert_eq!(
        json::read(example_block(&page, "json").as_bytes()).unwrap(),
        example_run()
    );
    let normal = normal_of(&example_run(), OutputOptions::default(), true);
    assert!(normal.contains(&example_block(&page, "text")), "{normal}");
}

/// Follows `$ref`s to the schema they name.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local refs only");
        node = &root["$defs"][name];
    }
    node
}

/// Resolves `$ref`, the `oneOf: [X, null]` idiom, and a `oneOf` of objects told apart by a
/// `type` constant (script elems and tables), to the object schema `value` must follow.
fn object_schema<'a>(root: &'a Value, mut node: &'a Value, value: &Value) -> Option<&'a Value> {
    loop {
        if node.get("$ref").is_some() {
            node = resolve(root, node);
        } else if let Some(alts) = node.get("oneOf").and_then(Value::as_array) {
            let tagged = alts.iter().find(|a| {
                let tag = &resolve(root, a)["properties"]["type"]["const"];
                !tag.is_null() && Some(tag) == value.get("type")
            });
            node = match tagged {
                Some(a) => a,
                None => alts
                    .iter()
                    .find(|a| a.get("type") != Some(&"null".into()))?,
            };
        } else {
            return (node.get("type") == Some(&"object".into())).then_some(node);
        }
    }
}

/// Every object in `value` has exactly the keys its schema requires, recursively.
fn check_keys(root: &Value, schema: &Value, value: &Value, path: &str) {
    match value {
        Value::Object(map) => {
            let s = object_schema(root, schema, value)
                .unwrap_or_else(|| panic!("{path}: no object schema"));
            let mut required: Vec<&str> = s["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let mut present: Vec<&str> = map.keys().map(String::as_str).collect();
            required.sort_unstable();
            present.sort_unstable();
            assert_eq!(present, required, "{path}: fields differ from the schema");
            assert_eq!(s["additionalProperties"], Value::Bool(false), "{path}");
            for (k, v) in map {
                check_keys(root, &s["properties"][k], v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            let mut s = schema;
            while let Some(r) = s.get("$ref").and_then(Value::as_str) {
                s = &root["$defs"][r.trim_start_matches("#/$defs/")];
            }
            for (i, v) in items.iter().enumerate() {
                check_keys(root, &s["items"], v, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn schema_names_exactly_the_fields_written() {
    let schema: Value = serde_json::from_str(&docs("portolan.schema.json")).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    // Nmap's own files from our lab carry what the hand-built runs do not: OS detection,
    // sequences, traceroutes, host, pre- and post-scan scripts with nested tables.
    let lab = ["nmap-os-a.xml", "nmap-os-trace.xml", "nmap-scripts.xml"]
        .map(|f| read_xml_file(data(f)).unwrap_or_else(|e| panic!("{f}: {e}")));
    for run in [sample_run(), nasty_run(), example_run()]
        .into_iter()
        .chain(lab)
    {
        let doc: Value = serde_json::from_str(&json_of(&run)).unwrap();
        check_keys(&schema, &schema, &doc, "$");
    }
}
