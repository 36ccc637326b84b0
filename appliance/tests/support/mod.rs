//! The appliance in process on loopback, a reqwest client (rustls on `ring` for HTTPS) and a
//! self-signed certificate made with `rcgen`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use appliance::cli::{Options, Tls, Users};
use appliance::Appliance;
use serde_json::Value;

pub const ADMIN: (&str, &str) = ("admin", "adm1n:pw");
pub const VIEWER: (&str, &str) = ("viewer", "v1ew");

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "appliance-test-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert PEM path, key PEM path,
/// cert DER).
pub fn self_signed(dir: &TempDir) -> (PathBuf, PathBuf, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.0.join("cert.pem");
    let key = dir.0.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// A client trusting `cert` (DER), or plain HTTP without.
pub fn client(cert: Option<&[u8]>) -> reqwest::Client {
    // reqwest's TLS on `ring`, as the server's (no second crypto library in the build).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let b = reqwest::Client::builder();
    let b = match cert {
        None => b,
        Some(der) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(rustls_pki_types::CertificateDer::from(der.to_vec()))
                .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            b.tls_backend_preconfigured(config)
        }
    };
    b.build().unwrap()
}

/// Options for a test appliance: loopback, port 0, fast steps.
pub fn options(step_ms: u64) -> Options {
    Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        step: Duration::from_millis(step_ms),
        ..Options::default()
    }
}

/// With TLS (a fresh self-signed pair) and the two test users.
pub fn secure(mut o: Options, dir: &TempDir) -> (Options, Vec<u8>) {
    let (cert, key, der) = self_signed(dir);
    o.tls = Some(Tls { cert, key });
    o.users = Users::Env(format!(
        "{}:admin:{}\n{}:readonly:{}\n",
        ADMIN.0, ADMIN.1, VIEWER.0, VIEWER.1
    ));
    (o, der)
}

pub struct Running {
    pub app: Appliance,
    pub base: String,
    pub client: reqwest::Client,
    pub auth: Option<(&'static str, &'static str)>,
    /// One service at a time in this process: they share its open-file limit, and one test
    /// holds thousands of slow connections on purpose.
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

pub async fn start(o: Options, cert: Option<&[u8]>) -> Running {
    let one_at_a_time = ONE_AT_A_TIME.lock().await;
    let tls = o.tls.is_some();
    let auth = matches!(o.users, Users::Env(_) | Users::File(_)).then_some(ADMIN);
    let app = Appliance::start(o).await.unwrap();
    let scheme = if tls { "https" } else { "http" };
    // By name for TLS (the certificate names localhost), by address otherwise.
    let base = if tls {
        format!("{scheme}://localhost:{}", app.addr().port())
    } else {
        format!("{scheme}://{}", app.addr())
    };
    Running {
        app,
        base,
        client: client(cert),
        auth,
        _one_at_a_time: one_at_a_time,
    }
}

impl Running {
    /// Shut the appliance down gracefully and wait for it (then another may start).
    pub async fn stop(self) {
        let Running {
            app,
            _one_at_a_time,
            ..
        } = self;
        app.shutdown("test");
        app.wait().await.unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.client.request(m, self.url(path));
        match self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn call(&self, method: &str, path: &str) -> Reply {
        self.send(self.req(method, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.req("POST", path).json(&body)).await
    }

    /// Long-poll a job until `done` holds for its record (no sleeping).
    pub async fn until(&self, uuid: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut r = self.call("GET", &format!("/api/cluster/jobs/{uuid}")).await;
        for _ in 0..200 {
            if done(&r.body) {
                return r.body;
            }
            let rev = r.body["revision"].as_u64().unwrap();
            r = self
                .call(
                    "GET",
                    &format!("/api/cluster/jobs/{uuid}?poll_timeout=30&revision={rev}"),
                )
                .await;
        }
        panic!("job {uuid} never got there: {:?}", r.body);
    }

    /// Long-poll a job until it ended.
    pub async fn ended(&self, uuid: &str) -> Value {
        self.until(uuid, |j| {
            matches!(j["state"].as_str(), Some("success" | "failure"))
        })
        .await
    }
}

/// The job UUID of a 202 or 200.
pub fn job_of(r: &Reply) -> String {
    r.body["job"]["uuid"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {} {:?}", r.status, r.text))
        .to_owned()
}

/// An error envelope with this status.
#[track_caller]
pub fn assert_envelope(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    let e = &r.body["error"];
    assert!(e["code"].is_string(), "no error.code: {}", r.text);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no error.message: {}",
        r.text
    );
}
