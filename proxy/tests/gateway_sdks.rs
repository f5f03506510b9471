//! The official Python SDKs (OpenAI Chat and Responses, Anthropic, google-genai; versions pinned in
//! `tests/sdk/requirements.txt`), unmodified, against a real `poolgate` in front of every API-key
//! backend: each SDK's unary and streaming call must return the upstream's text; token counts
//! (Anthropic, Gemini `countTokens`) and model lists (OpenAI's, Gemini's on `/v1beta` and `/v1`)
//! must come back in each SDK's shape.
//!
//! `.ci/run` installs the SDKs and sets `POOLGATE_REQUIRE_SDKS=1`, so there a missing SDK fails the
//! test; elsewhere it is skipped with a message.

mod gateway_common;

use std::process::Command;

use gateway_common::*;
use poolgate_tests::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sdk/python_clients.py");
const NODE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sdk/node_clients.mjs");
const NODE_MODULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sdk/node_modules");

fn sdks_installed() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openai, anthropic, google.genai"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("POOLGATE_REQUIRE_SDKS").is_none(),
            "POOLGATE_REQUIRE_SDKS is set but the SDKs are missing: pip install -r tests/sdk/requirements.txt"
        );
        eprintln!("skipping: the official SDKs are not installed (pip install -r tests/sdk/requirements.txt)");
    }
    ok
}

/// Whether a case answered what the mock upstream says (text, counts, model lists).
fn case_ok(c: &Value) -> bool {
    let name = c["case"].as_str().unwrap_or_default();
    let text = c["text"].as_str().unwrap_or_default();
    c["ok"] == true
        && match name {
            n if n.ends_with("count_tokens") => text.parse::<u64>().is_ok_and(|n| n > 0),
            n if n.contains("genai.models.list") => text.split(',').any(|m| m == "models/mock-model"),
            n if n.ends_with("openai.models.list") => text.split(',').any(|m| m == "mock-model"),
            n if n.ends_with(".stream") => text == "tok0 tok1 tok2 ",
            _ => text == "Hello from mock",
        }
}

fn node_sdks_installed() -> bool {
    let ok = std::path::Path::new(NODE_MODULES).join("openai").is_dir()
        && Command::new("node").arg("--version").status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("POOLGATE_REQUIRE_SDKS").is_none(),
            "POOLGATE_REQUIRE_SDKS is set but the Node SDKs are missing: npm ci --prefix tests/sdk"
        );
        eprintln!("skipping: the official Node SDKs are not installed (npm ci --prefix tests/sdk)");
    }
    ok
}

#[tokio::test]
async fn official_node_sdks_work_through_every_api_key_backend() {
    if !node_sdks_installed() {
        return;
    }
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom": [account("openai-custom", "o", &base, "k1")],
        "claude-custom": [account("claude-custom", "c", &base, "k3")],
    });
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let mut failures = Vec::new();
    for pool in ["openai-custom", "claude-custom"] {
        let out = tokio::task::spawn_blocking({
            let base = gw.url(&format!("/{pool}"));
            move || Command::new("node").args([NODE_SCRIPT, &base, KEY, "mock-model"]).output()
        })
        .await
        .expect("join")
        .expect("node runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cases: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert_eq!(cases.len(), 11, "{pool}: every case reported\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        failures.extend(cases.iter().filter(|c| !case_ok(c)).map(|c| format!("{pool}: {c}")));
    }
    assert!(failures.is_empty(), "Node SDK cases failed:\n{}\n--- gateway log\n{}", failures.join("\n"), gw.logs());
}

#[tokio::test]
async fn official_python_sdks_work_through_every_api_key_backend() {
    if !sdks_installed() {
        return;
    }
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom": [account("openai-custom", "o", &base, "k1")],
        "openaiResponses-custom": [{"uuid": "r", "OPENAI_API_KEY": "k2", "OPENAI_BASE_URL": base}],
        "claude-custom": [account("claude-custom", "c", &base, "k3")],
    });
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let mut failures = Vec::new();
    for pool in ["openai-custom", "openaiResponses-custom", "claude-custom"] {
        let out = tokio::task::spawn_blocking({
            let base = gw.url(&format!("/{pool}"));
            move || Command::new("python3").args([SCRIPT, &base, KEY, "mock-model"]).output()
        })
        .await
        .expect("join")
        .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cases: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert_eq!(cases.len(), 13, "{pool}: every case reported\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        failures.extend(cases.iter().filter(|c| !case_ok(c)).map(|c| format!("{pool}: {c}")));
    }
    assert!(failures.is_empty(), "SDK cases failed:\n{}\n--- gateway log\n{}", failures.join("\n"), gw.logs());
}
