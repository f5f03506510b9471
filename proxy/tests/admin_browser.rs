//! The dashboard in a real browser: headless Chromium through ChromeDriver (WebDriver), against
//! two replicas on one Redis. Logs in, sees the pools, disables an account and watches the
//! other replica stop routing to it, edits a setting, imports a credential and logs out, with
//! no console error; an account named like markup renders as text. With
//! `POOLGATE_SCREENSHOTS=1` the screenshots of the user docs (`docs/img/`) are retaken.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium`, `chromium-driver`, installed by
//! `.ci/run`); without them it says so and passes, unless `POOLGATE_REQUIRE_BROWSER` is set
//! (CI sets it), where a missing browser fails it.

mod admin_common;
mod gateway_common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_common::*;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use gateway_common::*;
use poolgate_store::Storage;
use serde_json::{json, Value};

const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

/// ChromeDriver on a private port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.is_file())
}

async fn start_driver() -> Option<Driver> {
    let (Some(driver), Some(_)) = (which("chromedriver"), which("chromium")) else {
        assert!(
            std::env::var_os("POOLGATE_REQUIRE_BROWSER").is_none(),
            "POOLGATE_REQUIRE_BROWSER is set but chromium/chromedriver are missing"
        );
        eprintln!("skipped: chromium and chromedriver are not installed");
        return None;
    };
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let d = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/status")).await {
            if r.status().is_success() {
                return Some(d);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": which("chromium").expect("chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(caps) = caps else { unreachable!() };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// ChromeDriver's browser log (the page's console), read and cleared.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn wait_css(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Finds and clicks `css`, again if the page re-rendered it in between (live updates rebuild
/// the pools table, which leaves a found element stale).
async fn click_css(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match wait_css(c, css).await.click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference && Instant::now() < deadline => {}
            Err(e) => panic!("click {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `css` is shown with text containing `want`.
async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return t;
                }
            }
        }
        assert!(Instant::now() < deadline, "{css} never showed {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes a screenshot; with `POOLGATE_SCREENSHOTS=1` it replaces the one in `docs/img/`.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var_os("POOLGATE_SCREENSHOTS").is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
    std::fs::create_dir_all(&dir).expect("docs/img");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

#[tokio::test]
async fn the_dashboard_drives_the_fleet_in_a_real_browser() {
    let Some(driver) = start_driver().await else { return };
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let xss = json!({"uuid": "xss", "customName": XSS_NAME, "OPENAI_API_KEY": "sk-upstream-x", "OPENAI_BASE_URL": f.mock.url("/v1")});
    f.store.add_account("openai-custom", acc(xss)).await.expect("xss account");
    let c = browser(&driver).await;
    c.goto(&a.url("/")).await.expect("open");

    // Log in.
    wait_css(&c, "#password").await.send_keys(PASSWORD).await.expect("type");
    c.find(Locator::Css("#login-button")).await.expect("button").click().await.expect("click");
    wait_text(&c, "#replicas tbody", "(this one)").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.find_all(Locator::Css("#replicas tbody tr")).await.expect("rows").len() < 2 {
        assert!(Instant::now() < deadline, "both replicas listed");
        c.find(Locator::Css("#nav button[data-view=overview]")).await.expect("nav").click().await.expect("click");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_text(&c, "#pool-summary tbody", "openai-custom").await;
    screenshot(&c, "dashboard-overview.png").await;

    // The pools, with the markup-like name shown as text.
    c.find(Locator::Css("#nav button[data-view=pools]")).await.expect("nav").click().await.expect("click");
    assert_eq!(wait_text(&c, "tr[data-uuid='xss'] td.name", XSS_NAME).await, XSS_NAME, "rendered as text");
    assert!(c.find_all(Locator::Css("#pool-tables img")).await.expect("query").is_empty(), "no element was injected");
    let health = wait_text(&c, "tr[data-uuid='acc-1'] td.health", "healthy").await;
    assert_eq!(health, "healthy", "accounts without runtime fields are healthy");
    let alert = c.get_alert_text().await;
    assert!(alert.is_err(), "no alert ran: {alert:?}");
    let page = c.source().await.expect("source");
    assert!(!page.contains("sk-upstream"), "no upstream key reaches the browser");
    screenshot(&c, "dashboard-pools.png").await;

    // Disable acc-0 in the browser (on A); B stops routing to it.
    let disable = "tr[data-uuid='acc-0'] button[data-action='disable']";
    click_css(&c, disable).await;
    wait_text(&c, "#pools-message", "Disable").await;
    wait_css(&c, "tr[data-uuid='acc-0'] button[data-action='enable']").await;
    wait_text(&c, "tr[data-uuid='acc-0'] td.health", "disabled").await;
    let token = call(b, "POST", "/api/login", None, Some(json!({"password": PASSWORD}))).await.1["token"]
        .as_str()
        .expect("token")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, pool) = call(b, "GET", "/api/providers/openai-custom", Some(&token), None).await;
        let row = pool["providers"].as_array().and_then(|a| a.iter().find(|r| r["uuid"] == "acc-0")).cloned();
        if row.is_some_and(|r| r["isDisabled"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "B sees the account disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = f.mock.hits_for_key("sk-upstream-0");
    for i in 0..30 {
        let (status, body) = post(&b.url("/v1/chat/completions"), &chat("m", i % 2 == 0)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(f.mock.hits_for_key("sk-upstream-0"), before, "B never routes to the account disabled on A");

    // Edit an account: its masked key goes back as "******" and stays as stored.
    click_css(&c, "tr[data-uuid='acc-1'] button[data-action='edit']").await;
    let fields = wait_css(&c, "#add-fields").await;
    let shown = fields.prop("value").await.expect("value").unwrap_or_default();
    assert!(shown.contains("******") && !shown.contains("sk-upstream"), "{shown}");
    let edited = shown.replace("\"customName\": \"acc-1\"", "\"customName\": \"edited in the browser\"");
    assert_ne!(edited, shown, "{shown}");
    fields.clear().await.expect("clear");
    fields.send_keys(&edited).await.expect("type");
    c.find(Locator::Css("#add-submit")).await.expect("save").click().await.expect("click");
    wait_text(&c, "#pools-message", "saved").await;
    wait_text(&c, "tr[data-uuid='acc-1'] td.name", "edited in the browser").await;
    let acc1 = f.store.get_account("openai-custom", "acc-1").await.expect("acc-1");
    assert_eq!(acc1.get("OPENAI_API_KEY"), Some(&json!("sk-upstream-1")), "the key was not overwritten by its mask");

    // Usage and quota (nothing to report for API-key pools, but the page works).
    c.find(Locator::Css("#nav button[data-view=usage]")).await.expect("nav").click().await.expect("click");
    wait_text(&c, "#usage-stamp", "As of").await;

    // Edit a setting; the other replica runs with it.
    c.find(Locator::Css("#nav button[data-view=config]")).await.expect("nav").click().await.expect("click");
    let field = wait_css(&c, "#config-form input[name=MAX_ERROR_COUNT]").await;
    field.clear().await.expect("clear");
    field.send_keys("42").await.expect("type");
    screenshot(&c, "dashboard-config.png").await;
    c.find(Locator::Css("#config-save")).await.expect("save").click().await.expect("click");
    wait_text(&c, "#config-message", "Saved").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(b, "GET", "/api/config", Some(&token), None).await.1["MAX_ERROR_COUNT"] != 42 {
        assert!(Instant::now() < deadline, "B runs with the edited setting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw = c.find(Locator::Css("#config-raw")).await.expect("raw").prop("value").await.expect("value");
    assert!(!raw.unwrap_or_default().contains(KEY), "the client key is never sent to the browser");

    // Import a credential.
    c.find(Locator::Css("#nav button[data-view=import]")).await.expect("nav").click().await.expect("click");
    wait_css(&c, "#import-text").await.send_keys("rt-from-browser").await.expect("type");
    c.find(Locator::Css("#import-button")).await.expect("import").click().await.expect("click");
    wait_text(&c, "#import-message", "Imported 1").await;
    let imported = f.store.get_pool("claude-kiro-oauth").await.expect("pool");
    assert_eq!(imported.len(), 1);
    let stored = f.store.get_token("claude-kiro-oauth", imported[0].uuid()).await.expect("token").expect("stored");
    assert_eq!(stored["refreshToken"], "rt-from-browser");

    // The live feed shows changes; log out ends the session everywhere.
    c.find(Locator::Css("#nav button[data-view=events]")).await.expect("nav").click().await.expect("click");
    wait_text(&c, "#event-log", "provider_update").await;
    let session = c.execute("return sessionStorage.getItem('poolgate-token')", vec![]).await.expect("js");
    let session = session.as_str().expect("token in the tab").to_string();
    c.find(Locator::Css("#logout")).await.expect("logout").click().await.expect("click");
    wait_css(&c, "#login-form").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(b, "GET", "/api/system", Some(&session), None).await.0 != 401 {
        assert!(Instant::now() < deadline, "the browser's session ended on B too");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    c.close().await.expect("close");
}
