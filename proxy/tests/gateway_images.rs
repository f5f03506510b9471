//! The OpenAI Images API (`/v1/images/generations`, `/v1/images/edits`): passed to OpenAI
//! accounts' images API as sent (multipart edits rebuilt with every file), and served by
//! image-capable chat models of other providers (Gemini through Code Assist) by a chat request
//! per image; bad requests get OpenAI-shaped 400s and reach no upstream. The official OpenAI
//! Python SDK's `images.generate` and `images.edit` run against both.

mod gateway_common;

use std::process::Command;

use base64::Engine;
use gateway_common::*;
use poolgate_tests::mock_oauth::{MockOAuth, Prov};
use poolgate_tests::mock_upstream::formats::{IMAGE_TEXT, PNG_B64};
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use serde_json::{json, Value};
use sha2::Digest;

fn png_bytes() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(PNG_B64).expect("png")
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

async fn post_form(url: &str, form: reqwest::multipart::Form) -> (u16, Value) {
    let r = client().post(url).bearer_auth(KEY).multipart(form).send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn file(name: &str, data: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(data).file_name(name.to_string()).mime_str("image/png").expect("mime")
}

async fn openai_gateway() -> (MockUpstream, Gateway, tempfile::TempDir) {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "o", &mock.url("/v1"), "sk-img")]});
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    (mock, gw, dir)
}

/// A Gemini CLI account (Code Assist) on the OAuth mock, with a valid token.
async fn gemini_gateway() -> (MockOAuth, Gateway, tempfile::TempDir) {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::Google, "ya29.valid", std::time::Duration::from_secs(3600));
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("gemini.json");
    let expiry = poolgate_store::time::epoch_ms() + 3_600_000;
    let creds =
        json!({"access_token": "ya29.valid", "refresh_token": "rt", "token_type": "Bearer", "expiry_date": expiry});
    std::fs::write(&token, creds.to_string()).expect("token");
    let pools = json!({"gemini-cli-oauth": [{"uuid": "g-1", "PROJECT_ID": "mock-proj",
        "GEMINI_OAUTH_CREDS_FILE_PATH": token.to_string_lossy()}]});
    let config = json!({"REQUIRED_API_KEY": KEY, "MODEL_PROVIDER": "gemini-cli-oauth"});
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config");
    std::fs::write(dir.path().join("provider_pools.json"), pools.to_string()).expect("pools");
    let b = mock.base();
    let env = vec![
        ("GEMINI_BASE_URL", format!("{b}/codeassist")),
        ("GEMINI_OAUTH_TOKEN_URL", format!("{b}/google/token")),
        ("HEALTH_CHECK_ENABLED", "false".into()),
    ];
    let gw = Gateway::start(dir.path(), &env).await;
    (mock, gw, dir)
}

#[tokio::test]
async fn openai_accounts_get_the_images_api_request_as_sent() {
    let (mock, gw, _dir) = openai_gateway().await;
    let url = gw.url("/v1/images/generations");
    let (status, body) =
        post(&url, &json!({"model": "gpt-image-1", "prompt": "a red square", "n": 2, "size": "1024x1024"})).await;
    assert_eq!(status, 200, "{body}");
    let v = parse(&body);
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["data"][0]["b64_json"], PNG_B64);
    let hit = mock.requests().into_iter().last().expect("upstream hit");
    assert!(hit.path.ends_with("/v1/images/generations"), "{}", hit.path);
    assert_eq!(hit.key.as_deref(), Some("sk-img"), "the account's key, not the client's");
    assert_eq!((hit.body["n"].clone(), hit.body["size"].clone()), (json!(2), json!("1024x1024")), "as sent");

    // `url` answers pass through; the provider prefix routes too.
    let (status, body) = post(
        &gw.url("/openai-custom/v1/images/generations"),
        &json!({"model": "gpt-image-1", "prompt": "p", "response_format": "url"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(parse(&body)["data"][0]["url"].as_str().is_some_and(|u| u.starts_with("https://")), "{body}");

    // Edits: every file of the form reaches the upstream, with its name and type.
    let (a, b) = (png_bytes(), [png_bytes(), vec![0u8; 300_000]].concat());
    let form = reqwest::multipart::Form::new()
        .text("model", "gpt-image-1")
        .text("prompt", "make it blue")
        .text("n", "1")
        .part("image[]", file("a.png", a.clone()))
        .part("image[]", file("b.png", b.clone()))
        .part("mask", file("mask.png", png_bytes()));
    let (status, v) = post_form(&gw.url("/v1/images/edits"), form).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["b64_json"], PNG_B64);
    let hit = mock.requests().into_iter().last().expect("upstream hit");
    assert!(hit.path.ends_with("/v1/images/edits"), "{}", hit.path);
    assert_eq!((hit.body["model"].clone(), hit.body["prompt"].clone()), (json!("gpt-image-1"), json!("make it blue")));
    let files = hit.body["files"].as_array().cloned().unwrap_or_default();
    let seen: Vec<(String, String)> = files
        .iter()
        .map(|f| (f["field"].as_str().unwrap_or("").to_string(), f["sha256"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("image[]".to_string(), sha256_hex(&a)),
            ("image[]".to_string(), sha256_hex(&b)),
            ("mask".to_string(), sha256_hex(&png_bytes()))
        ],
        "{files:?}"
    );
    assert_eq!(files[1]["filename"], "b.png");
    assert_eq!(files[1]["content_type"], "image/png");

    // An upstream whose answer is not an images answer is a 502 (and the account's failure).
    mock.set_default(Script::raw("application/json", r#"{"object":"chat.completion","choices":[]}"#));
    let (status, body) = post(&url, &json!({"model": "gpt-image-1", "prompt": "p"})).await;
    assert_eq!(status, 502, "{body}");
    assert!(parse(&body)["error"]["message"].as_str().is_some_and(|m| m.contains("images API")), "{body}");
    assert!(!gw.logs().contains("sk-img") && !gw.logs().contains(KEY), "no key in the log");
}

#[tokio::test]
async fn bad_image_requests_get_openai_shaped_400s_and_reach_no_upstream() {
    let (mock, gw, _dir) = openai_gateway().await;
    let url = gw.url("/v1/images/generations");
    for (body, field) in [
        (json!({"model": "gpt-image-1"}), "prompt"),
        (json!({"prompt": "p"}), "model"),
        (json!({"model": "gpt-image-1", "prompt": "p", "n": 0}), "n"),
        (json!({"model": "gpt-image-1", "prompt": "p", "response_format": "gif"}), "response_format"),
        (json!({"model": "gpt-image-1", "prompt": "p", "stream": true}), "stream"),
    ] {
        let (status, text) = post(&url, &body).await;
        assert_eq!(status, 400, "{body}: {text}");
        let v = parse(&text);
        assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(field)), "{body}: {v}");
    }
    let r = client().post(&url).bearer_auth(KEY).body("{not json").send().await.expect("send");
    assert_eq!(r.status(), 400);
    // Edits: not multipart, no image, a text file, a broken form.
    let edits = gw.url("/v1/images/edits");
    let (status, text) = post(&edits, &json!({"model": "m", "prompt": "p"})).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("multipart"), "{text}");
    let no_image = reqwest::multipart::Form::new().text("model", "gpt-image-1").text("prompt", "p");
    let (status, v) = post_form(&edits, no_image).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("image")), "{v}");
    let text_file = reqwest::multipart::Form::new().text("model", "gpt-image-1").text("prompt", "p").part(
        "image",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("a.txt").mime_str("text/plain").expect("mime"),
    );
    let (status, v) = post_form(&edits, text_file).await;
    assert_eq!(status, 400, "{v}");
    let r = client()
        .post(&edits)
        .bearer_auth(KEY)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nunterminated")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("multipart")), "{v}");
    // Without the key: 401 in the same shape.
    let r = client().post(&url).json(&json!({"model": "m", "prompt": "p"})).send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(mock.hits(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn gemini_image_models_serve_the_images_api_through_chat() {
    let (mock, gw, _dir) = gemini_gateway().await;
    let url = gw.url("/v1/images/generations");
    let (status, body) = post(&url, &json!({"model": "gemini-2.5-flash-image", "prompt": "a cat", "n": 2})).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let v = parse(&body);
    let data = v["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 2, "one chat request per image: {v}");
    for d in &data {
        assert_eq!(d["b64_json"], PNG_B64);
        assert_eq!(d["revised_prompt"], IMAGE_TEXT);
    }
    let calls: Vec<Value> = mock
        .requests(Prov::Google)
        .into_iter()
        .filter(|r| r.path.contains(":generateContent"))
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["model"], "gemini-2.5-flash-image");
    let text = calls[0].pointer("/request/contents/0/parts/0/text").and_then(Value::as_str).unwrap_or("");
    assert!(text.contains("a cat"), "{}", calls[0]);

    // `url`: a data: URL.
    let body = json!({"model": "gemini-2.5-flash-image", "prompt": "p", "response_format": "url"});
    let (status, text) = post(&url, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(parse(&text)["data"][0]["url"], format!("data:image/png;base64,{PNG_B64}"));

    // Edits: the uploaded image goes to Gemini as inline data.
    let upload = [png_bytes(), b"-edit-me".to_vec()].concat();
    let form = reqwest::multipart::Form::new()
        .text("model", "gemini-2.5-flash-image")
        .text("prompt", "make it blue")
        .part("image", file("in.png", upload.clone()));
    let (status, v) = post_form(&gw.url("/v1/images/edits"), form).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"][0]["b64_json"], PNG_B64);
    let last =
        mock.requests(Prov::Google).into_iter().rev().find(|r| r.path.contains(":generateContent")).expect("call");
    let sent: Value = serde_json::from_slice(&last.body).expect("json");
    let inline = sent.pointer("/request/contents/0/parts/1/inlineData/data").and_then(Value::as_str).unwrap_or("");
    assert_eq!(inline, base64::engine::general_purpose::STANDARD.encode(&upload), "{sent}");

    // A model that answers only text: a clear 502, not an empty list.
    let (status, text) = post(&url, &json!({"model": "gemini-2.5-flash", "prompt": "p"})).await;
    assert_eq!(status, 502, "{text}");
    assert!(parse(&text)["error"]["message"].as_str().is_some_and(|m| m.contains("without an image")), "{text}");
}

const SDK_SCRIPT: &str = r#"
import base64, io, json, sys, openai
base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
c = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
g = c.images.generate(model=model, prompt="a red square", n=2, response_format="b64_json")
png = base64.b64decode(g.data[0].b64_json)
f1, f2 = io.BytesIO(png), io.BytesIO(png)
f1.name, f2.name = "a.png", "b.png"
e = c.images.edit(model=model, image=[f1, f2], prompt="make it blue")
print(json.dumps({"generated": len(g.data), "png": png[:8].hex(), "edited": len(e.data)}))
"#;

fn sdk_installed() -> bool {
    let ok = Command::new("python3").args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("POOLGATE_REQUIRE_SDKS").is_none(),
            "POOLGATE_REQUIRE_SDKS is set but openai is missing"
        );
        eprintln!("skipping: the openai SDK is not installed (pip install -r tests/sdk/requirements.txt)");
    }
    ok
}

async fn run_sdk(base: String, model: &'static str) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3").args(["-c", SDK_SCRIPT, &base, KEY, model]).output().expect("python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{model}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_generates_and_edits_images() {
    if !sdk_installed() {
        return;
    }
    let want = json!({"generated": 2, "png": "89504e470d0a1a0a", "edited": 1});
    let (_m, gw, _d) = openai_gateway().await;
    assert_eq!(run_sdk(gw.url(""), "gpt-image-1").await, want, "openai-custom");
    let (_m, gw, _d) = gemini_gateway().await;
    assert_eq!(run_sdk(gw.url(""), "gemini-2.5-flash-image").await, want, "gemini-cli-oauth");
}
