//! Browser plumbing for `tests/it/panel.rs`: chromedriver + headless Chromium through WebDriver
//! (`fantoccini`), a TCP proxy whose connections the test can cut, and a polling wait.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// How long the page may take to show a change.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP proxy in front of the server whose connections the test can cut.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = broadcast::channel::<()>(4);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut stop = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }
    /// Drops every open connection (new ones still go through).
    pub fn cut(&self) {
        // No receiver means no open connection: nothing to cut.
        let _ = self.cut.send(());
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// chromedriver (killed on drop) and a scratch Chromium profile (removed on drop).
pub struct Driver {
    child: tokio::process::Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Best effort: the process may have exited already.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// Chromium and chromedriver, or why not.
pub fn browser_binaries() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        std::env::var("ROLLCALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("ROLLCALL_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let chromium = which(&chromium).ok_or(format!("no Chromium at {chromium}"))?;
    let driver = which(&driver).ok_or(format!("chromedriver not found ({driver})"))?;
    Ok((chromium, driver))
}

pub async fn launch(chromium: &Path, driver: &Path) -> (Driver, Browser) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!(
        "rollcall-panel-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let d = Driver {
        child,
        port,
        profile,
    };
    let status = format!("http://127.0.0.1:{}/status", d.port);
    let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
    while reqwest::get(&status).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--window-size=1100,760", "--lang=en-US",
                format!("--user-data-dir={}", d.profile.display()),
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session");
    (d, browser)
}

/// Polls `check` until it returns `Some`, or fails with `what`.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
