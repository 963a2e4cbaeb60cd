//! A small WebDriver client (the W3C protocol over HTTP) driving headless Chromium through
//! the OS package's `chromedriver`: just what the browser tests need.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The element id key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver` and `chromium`, if installed: `ORION_TEST_CHROMEDRIVER` / `ORION_TEST_CHROMIUM`,
/// else the Debian packages' paths.
pub(crate) fn installed() -> Option<(String, String)> {
    let driver =
        std::env::var("ORION_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let browser =
        std::env::var("ORION_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    (Path::new(&driver).exists() && Path::new(&browser).exists()).then_some((driver, browser))
}

/// A browser session; the driver process is killed when it is dropped.
pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    profile: std::path::PathBuf,
}

pub(crate) type Element = String;

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium session with a fresh
    /// profile, `width` × `height` pixels.
    pub(crate) async fn start(driver: &str, browser: &str, width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The browser's time zone (Chromium inherits the driver's environment): UTC+05:30
        // all year, so a page showing UTC where it should show local time is caught.
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .env("TZ", "Asia/Kolkata")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("orion-chromium-{}", fastrand::u64(..)));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": browser,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let response: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {response}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver: child,
            profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let v: Value = request.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The elements `xpath` finds now.
    pub(crate) async fn all(&self, xpath: &str) -> Vec<Element> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "xpath", "value": xpath})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to `within`) for an element `xpath` finds whose text contains `text`.
    pub(crate) async fn wait_for(&self, xpath: &str, text: &str, within: Duration) -> Element {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            for e in self.all(xpath).await {
                last = self.text(&e).await;
                if last.contains(text) {
                    return e;
                }
            }
            if started.elapsed() > within {
                let url = self.call(reqwest::Method::GET, "/url", None).await;
                let source = self.call(reqwest::Method::GET, "/source", None).await;
                panic!(
                    "no {xpath} with {text:?} within {within:?} at {url} (last text {last:?}); page: {source}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn text(&self, e: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute of an element (its current DOM property or attribute).
    pub(crate) async fn attribute(&self, e: &Element, name: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{e}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub(crate) async fn click(&self, e: &Element) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Replaces the text of an input.
    pub(crate) async fn fill(&self, e: &Element, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub(crate) async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the page to `path`.
    pub(crate) async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session and stops the driver (as dropping it does).
    pub(crate) fn close(self) {}
}

impl Drop for Browser {
    /// Ends the session (the driver then stops the browser, which outlives a killed driver),
    /// stops the driver and deletes the profile: also when a test fails half-way.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let rest = self.session.trim_start_matches("http://");
        if let Some((addr, path)) = rest.split_once('/')
            && let Ok(mut stream) = std::net::TcpStream::connect(addr)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
