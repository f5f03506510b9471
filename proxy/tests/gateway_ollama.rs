//! The Ollama-compatible endpoints (`/ollama/api/*`) through a real `poolgate`, served by
//! API-key backends of both wire shapes: NDJSON streaming by default, unary on request, the
//! model list, and Ollama's error shape.

mod gateway_common;

use gateway_common::*;
use poolgate_tests::mock_upstream::MockUpstream;
use serde_json::{json, Value};

async fn ndjson(gw: &Gateway, path: &str, body: &Value, provider: &str) -> (u16, String, Vec<Value>) {
    let r = client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("model-provider", provider)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let kind = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = r.text().await.expect("text");
    let lines = text.lines().filter(|l| !l.trim().is_empty()).map(parse).collect();
    (status, kind, lines)
}

#[tokio::test]
async fn ollama_clients_chat_and_generate_through_every_backend_shape() {
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom": [account("openai-custom", "o", &base, "k1")],
        "claude-custom": [account("claude-custom", "c", &base, "k2")],
    });
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    let v: Value = client().get(gw.url("/ollama/api/version")).send().await.expect("get").json().await.expect("json");
    assert!(v["version"].is_string());
    let tags: Value = client()
        .get(gw.url("/ollama/api/tags"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(tags["models"].as_array().is_some_and(|m| m.iter().any(|x| x["name"] == "mock-model")), "{tags}");

    for provider in ["openai-custom", "claude-custom"] {
        let chat = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "options": {"temperature": 0.3}});
        let (status, kind, lines) = ndjson(&gw, "/ollama/api/chat", &chat, provider).await;
        assert_eq!(status, 200, "{provider}: {lines:?}");
        assert_eq!(kind, "application/x-ndjson", "streams by default");
        let text: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
        assert_eq!(text, "tok0 tok1 tok2 ", "{provider}: {lines:?}");
        let last = lines.last().expect("a done line");
        assert_eq!((last["done"].clone(), last["done_reason"].clone()), (json!(true), json!("stop")), "{provider}");
        assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));

        let unary = json!({"model": "mock-model", "stream": false, "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, lines) = ndjson(&gw, "/ollama/api/chat", &unary, provider).await;
        assert_eq!((status, lines.len()), (200, 1));
        assert_eq!(lines[0]["message"]["content"], "Hello from mock", "{provider}");
        assert_eq!(lines[0]["done"], true);

        let generate = json!({"model": "mock-model", "prompt": "hi", "system": "be brief", "stream": false});
        let (status, _, lines) = ndjson(&gw, "/ollama/api/generate", &generate, provider).await;
        assert_eq!(status, 200);
        assert_eq!(lines[0]["response"], "Hello from mock", "{provider}");
        let (_, _, lines) =
            ndjson(&gw, "/ollama/api/generate", &json!({"model": "mock-model", "prompt": "hi"}), provider).await;
        let text: String = lines.iter().filter_map(|l| l["response"].as_str()).collect();
        assert_eq!(text, "tok0 tok1 tok2 ", "{provider}");
    }
    // The options reached the upstream (OpenAI backend: as-is names).
    let hits = mock.requests();
    assert!(hits.iter().any(|h| h.body["temperature"] == 0.3), "options.temperature forwarded");

    // Errors in Ollama's shape: no key, bad body, missing model.
    let r = client()
        .post(gw.url("/ollama/api/chat"))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.expect("json")["error"].is_string());
    for bad in [json!([]), json!({"messages": []}), json!({"model": "m", "messages": "no"})] {
        let (status, _, lines) = ndjson(&gw, "/ollama/api/chat", &bad, "openai-custom").await;
        assert_eq!(status, 400, "{bad}");
        assert!(lines[0]["error"].is_string(), "{lines:?}");
    }
    let show: Value = client()
        .post(gw.url("/ollama/api/show"))
        .json(&json!({"model": "mock-model"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(show["details"].is_object());
}
