//! A small W3C WebDriver client over reqwest, for ChromeDriver and headless Chromium: start
//! `chromedriver` on a free port, open sessions (each with its own throw-away profile and
//! download directory), navigate, find elements by CSS, click, type, run scripts, take
//! screenshots and read the browser log. Only what the journeys need; every WebDriver error
//! panics with the command that failed, since a test can do nothing better with it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long finds and waits try before failing.
pub const WAIT: Duration = Duration::from_secs(15);

/// A running `chromedriver`; killed on drop.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts chromedriver on a free port. Missing browser binaries fail the test with one
    /// line saying what to install: a silent skip would let CI pass without ever looking.
    pub async fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (bash .ci/run does)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Its own process group, which the browsers it starts join: see Drop.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session: a fresh profile, downloads into its own directory, the browser
    /// log at every level (so failed loads and CSP violations can be read back).
    pub async fn session(&self, width: u32, height: u32) -> Session {
        self.open(width, height, false).await
    }

    /// [`Driver::session`] that also records every request the browser sends, redirects
    /// included (see [`Session::requests_sent`]).
    pub async fn session_recording_requests(&self, width: u32, height: u32) -> Session {
        self.open(width, height, true).await
    }

    async fn open(&self, width: u32, height: u32, record_requests: bool) -> Session {
        let logs = if record_requests {
            json!({"browser": "ALL", "performance": "ALL"})
        } else {
            json!({"browser": "ALL"})
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": logs,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    // No crash handler: it detaches into its own session, outliving the test,
                    // and writes reports under the real home directory.
                    "--disable-breakpad",
                    format!("--user-data-dir={}", profile.path().join("chromium").display()),
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let v = call(
            &self.http,
            "POST",
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await;
        let id = v["sessionId"].as_str().expect("session id").to_string();
        let s = Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.base),
            downloads,
            _profile: profile,
        };
        // NB: headless Chromium ignores the download preferences unless told over CDP.
        s.cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": s.downloads.display().to_string()}),
        )
        .await;
        s
    }
}

impl Drop for Driver {
    // NB: killing chromedriver alone would orphan the Chromium processes of any session a
    // failed test never quit; they are all in chromedriver's process group, so end that.
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// A free loopback port (the listener is dropped before use; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn call(http: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
    try_call(http, method, url, body)
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url} failed: {e}"))
}

/// One WebDriver command; an error is the driver's message.
async fn try_call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let req = http.request(m, url);
    // ChromeDriver wants a JSON body on every POST, even an empty one.
    let req = match (method, body) {
        (_, Some(b)) => req.json(&b),
        ("POST", None) => req.json(&json!({})),
        _ => req,
    };
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = v["value"]["message"].as_str().map(str::to_string);
        return Err(format!(
            "({status}) {}",
            msg.unwrap_or_else(|| v.to_string())
        ));
    }
    Ok(v["value"].clone())
}

/// One browser entry from `se/log`.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

/// A WebDriver session (one browser window with its own profile).
pub struct Session {
    http: reqwest::Client,
    base: String,
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

/// A found element, by its WebDriver id.
#[derive(Clone)]
pub struct Element {
    id: String,
}

/// Marks the current document so a wait can tell when a new one has replaced it.
const MARK_DOCUMENT: &str = "document.documentElement.dataset.wdSeen = '1';";
const NEW_DOCUMENT_LOADED: &str = "return !document.documentElement.dataset.wdSeen \
                                   && document.readyState === 'complete';";

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    async fn try_cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        try_call(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn refresh(&self) {
        self.cmd("POST", "/refresh", None).await;
    }

    pub async fn set_window(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    pub async fn delete_cookies(&self) {
        self.cmd("DELETE", "/cookie", None).await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// A Chrome DevTools command (ChromeDriver's vendor endpoint).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
    }

    /// Polls `probe` until it gives a value or [`WAIT`] runs out; `what` names the wait in
    /// the failure, with the last thing seen.
    async fn wait_for<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            match probe().await {
                Ok(v) => return v,
                Err(last) if Instant::now() >= deadline => {
                    panic!(
                        "timed out waiting for {what} on {}: {last}",
                        self.url().await
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("element {css:?}"), || async {
            let v = self
                .try_cmd(
                    "POST",
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await?;
            element(&v).ok_or_else(|| "no element reference".to_string())
        })
        .await
    }

    /// Every element matching `css` now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default()
    }

    /// The visible button, link or disclosure whose text is exactly `text`, waiting for it.
    pub async fn button(&self, text: &str) -> Element {
        self.wait_for(&format!("a visible button {text:?}"), || async {
            let v = self
                .try_cmd(
                    "POST",
                    "/execute/sync",
                    Some(json!({
                        "script": "return Array.from(document.querySelectorAll('button, a, summary'))\
                            .find(e => e.offsetParent !== null && e.textContent.trim() === arguments[0]) || null;",
                        "args": [text],
                    })),
                )
                .await?;
            element(&v).ok_or_else(|| "not there".to_string())
        })
        .await
    }

    /// Clicks without waiting for anything (a disclosure, a download, a script action).
    pub async fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.id), None)
            .await;
    }

    /// Clicks the button with this text and waits until the page it leads to has loaded.
    // NB: ChromeDriver's click does not reliably wait for the navigation a form submit
    // starts, so the old document is marked and the wait is for a document without the mark.
    pub async fn submit(&self, text: &str) {
        let b = self.button(text).await;
        self.exec(MARK_DOCUMENT, vec![]).await;
        self.click(&b).await;
        self.wait_for_new_document(&format!("the page after {text:?}"))
            .await;
    }

    /// Reloads and waits for the new document.
    pub async fn reload(&self) {
        self.exec(MARK_DOCUMENT, vec![]).await;
        self.refresh().await;
        self.wait_for_new_document("a reload").await;
    }

    async fn wait_for_new_document(&self, what: &str) {
        self.wait_for(what, || async {
            match self
                .try_cmd(
                    "POST",
                    "/execute/sync",
                    Some(json!({"script": NEW_DOCUMENT_LOADED, "args": []})),
                )
                .await
            {
                Ok(Value::Bool(true)) => Ok(()),
                Ok(_) => Err("still the old page".into()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Clears an input and types `text` into it, key by key as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{}/clear", e.id), None)
            .await;
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.id),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.id), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.cmd("GET", &format!("/element/{}/property/{name}", e.id), None)
            .await
    }

    /// The visible text of the first element matching `css` (retried while the page
    /// changes under it).
    pub async fn text_of(&self, css: &str) -> String {
        self.wait_for(&format!("the text of {css:?}"), || async {
            let v = self
                .try_cmd(
                    "POST",
                    "/execute/sync",
                    Some(json!({
                        "script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                        "args": [css],
                    })),
                )
                .await?;
            v.as_str()
                .map(|t| t.trim().to_string())
                .ok_or_else(|| "no such element".to_string())
        })
        .await
    }

    /// Waits until the first element matching `css` reads exactly `expected`.
    pub async fn expect_text(&self, css: &str, expected: &str) {
        self.wait_for(&format!("{css:?} to read {expected:?}"), || async {
            let seen = self.text_of(css).await;
            if seen == expected {
                Ok(())
            } else {
                Err(format!("it reads {seen:?}"))
            }
        })
        .await
    }

    /// The visible text of the whole page.
    pub async fn page_text(&self) -> String {
        self.text_of("body").await
    }

    /// Waits until the page's visible text contains `needle`.
    pub async fn see(&self, needle: &str) {
        self.wait_for(&format!("{needle:?} to show"), || async {
            let text = self.page_text().await;
            if text.contains(needle) {
                Ok(())
            } else {
                Err(format!("the page says:\n{text}"))
            }
        })
        .await
    }

    /// Saves a PNG of the whole page, not just the viewport, so a person sees all of it.
    pub async fn screenshot(&self, path: &Path) {
        let m = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &m["cssContentSize"];
        let v = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("base64 screenshot"))
            .expect("screenshot decodes");
        std::fs::write(path, png).expect("screenshot written");
    }

    /// The browser log since the last call (ChromeDriver hands each entry out once).
    pub async fn browser_log(&self) -> Vec<LogEntry> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| LogEntry {
                        level: e["level"].as_str().unwrap_or_default().to_string(),
                        message: e["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The URLs of the requests the browser sent since the last call, in order, each hop
    /// of a redirect included (from ChromeDriver's performance log: only in a session from
    /// [`Driver::session_recording_requests`]).
    pub async fn requests_sent(&self) -> Vec<String> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({"type": "performance"})))
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }

    pub async fn quit(self) {
        self.cmd("DELETE", "", None).await;
    }
}

/// A W3C element reference is an object with one (vendor-neutral) key whose value is the id.
fn element(v: &Value) -> Option<Element> {
    let id = v.as_object()?.values().next()?.as_str()?.to_string();
    Some(Element { id })
}
