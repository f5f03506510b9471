//! The CRDs' CEL rules (`x-kubernetes-validations`), read from the committed YAML and evaluated
//! with a CEL interpreter: the test API server does not enforce CEL, so without this the rules
//! (immutability, uniqueness, one-of) would go untested. Every rule in the YAML must have cases
//! here, so a new rule cannot land untested.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cel_interpreter::{Context, Program};
use serde_json::{json, Value};

/// Rules by (file, JSON path of the schema node), in YAML order.
fn rules() -> BTreeMap<(String, String), Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for file in ["clientconfigs.yaml", "providerpools.yaml"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml").join(file);
        let text = std::fs::read_to_string(&path).expect("CRD YAML");
        let crd: Value = serde_norway::from_str(&text).expect("YAML");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(file, "", schema, &mut out);
    }
    out
}

fn walk(file: &str, at: &str, node: &Value, out: &mut BTreeMap<(String, String), Vec<(String, String)>>) {
    if let Some(vs) = node.get("x-kubernetes-validations").and_then(Value::as_array) {
        let rules = vs
            .iter()
            .map(|v| {
                (
                    v["rule"].as_str().unwrap_or_default().to_string(),
                    v["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.insert((file.to_string(), at.to_string()), rules);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(file, &format!("{at}.{k}"), v, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk(file, &format!("{at}[]"), items, out);
    }
}

/// Evaluates `rule` with `self` (and `oldSelf` on updates).
fn eval(rule: &str, this: &Value, old: Option<&Value>) -> bool {
    let program = Program::compile(rule).unwrap_or_else(|e| panic!("rule {rule:?} does not compile: {e:?}"));
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", cel_interpreter::to_value(this).expect("self"));
    if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", cel_interpreter::to_value(o).expect("oldSelf"));
    }
    match program.execute(&ctx) {
        Ok(cel_interpreter::Value::Bool(b)) => b,
        other => panic!("rule {rule:?} on {this}: {other:?}"),
    }
}

/// (value, old value on update, expected) per rule message.
fn cases(message: &str) -> Vec<(Value, Option<Value>, bool)> {
    match message {
        "providerType is immutable" => vec![
            (json!("openai-custom"), Some(json!("openai-custom")), true),
            (json!("claude-custom"), Some(json!("openai-custom")), false),
        ],
        "keyPrefix is immutable" => {
            vec![(json!("a:"), Some(json!("a:")), true), (json!("b:"), Some(json!("a:")), false)]
        }
        "providerType must not be empty" | "keyPrefix must not be empty" => {
            vec![(json!("x"), None, true), (json!(""), None, false)]
        }
        "account names must be unique" | "client key names must be unique" => vec![
            (json!([]), None, true),
            (json!([{"name": "a"}, {"name": "b"}]), None, true),
            (json!([{"name": "a"}, {"name": "b"}, {"name": "a"}]), None, false),
        ],
        "set exactly one of configMapRef and secretRef" => vec![
            (json!({"configMapRef": {"name": "legacy"}}), None, true),
            (json!({"secretRef": {"name": "legacy"}}), None, true),
            (json!({"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}), None, false),
            (json!({"items": []}), None, false),
        ],
        _ => vec![],
    }
}

#[test]
fn every_cel_rule_of_the_crds_holds_on_its_cases() {
    let all = rules();
    let found: Vec<&str> = all.values().flatten().map(|(_, m)| m.as_str()).collect();
    for want in [
        "providerType is immutable",
        "providerType must not be empty",
        "account names must be unique",
        "client key names must be unique",
        "keyPrefix is immutable",
        "keyPrefix must not be empty",
        "set exactly one of configMapRef and secretRef",
    ] {
        assert!(found.contains(&want), "the CRDs lost the rule {want:?}: {found:?}");
    }
    for ((file, at), rules) in &all {
        for (rule, message) in rules {
            let cases = cases(message);
            assert!(!cases.is_empty(), "{file} {at}: rule {rule:?} ({message}) has no test cases");
            for (this, old, want) in cases {
                assert_eq!(eval(rule, &this, old.as_ref()), want, "{file} {at}: {rule:?} on {this} (old {old:?})");
            }
        }
    }
}

#[test]
fn immutable_fields_are_transition_rules_on_the_field_itself() {
    let all = rules();
    let at = |file: &str, path: &str| all.get(&(file.to_string(), path.to_string())).cloned().unwrap_or_default();
    assert!(at("providerpools.yaml", ".spec.providerType").iter().any(|(r, _)| r == "self == oldSelf"));
    assert!(at("clientconfigs.yaml", ".spec.redis.keyPrefix").iter().any(|(r, _)| r == "self == oldSelf"));
}

#[test]
fn the_base_url_pattern_accepts_http_urls_only() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml/providerpools.yaml");
    let crd: Value = serde_norway::from_str(&std::fs::read_to_string(path).expect("yaml")).expect("YAML");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["accounts"]["items"]["properties"]["settings"]["properties"]["baseUrl"];
    let pattern = schema["pattern"].as_str().expect("baseUrl has a pattern");
    let program = Program::compile("self.matches(pattern)").expect("compile");
    for (url, want) in [
        ("https://api.openai.com/v1", true),
        ("http://127.0.0.1:9/v1", true),
        ("not a url", false),
        ("ftp://example.com", false),
        ("http://", false),
        ("https:///v1", false),
        ("https://user:pw@example.com/v1", false),
    ] {
        let mut ctx = Context::default();
        ctx.add_variable_from_value("self", url);
        ctx.add_variable_from_value("pattern", pattern);
        let got = matches!(program.execute(&ctx), Ok(cel_interpreter::Value::Bool(true)));
        assert_eq!(got, want, "{url}");
    }
}
