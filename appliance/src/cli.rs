//! Command line and environment: what the appliance is told at start.
//!
//! ```text
//! appliance [--listen ADDR] [--workers N] [--step-ms MS] [--retention SECS]
//!           [--shutdown-grace SECS] [--header-timeout SECS] [--max-connections N]
//!           [--max-body BYTES] [--tls-cert FILE --tls-key FILE] [--users FILE]
//!           [--data-dir DIR | --ephemeral]
//! ```
//!
//! Credentials come from `--users FILE` or, without it, from the environment variable
//! `APPLIANCE_USERS` (the same lines); see [`crate::auth`]. Their text is never logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the job table and the configuration live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// Nothing survives the process (`--ephemeral`).
    #[default]
    Memory,
    /// A directory (`--data-dir DIR`, by default `appliance-data` in the working directory,
    /// created on first start): the job table (`jobs.bin`, every acknowledged change on disk
    /// before the answer leaves), the configuration (`config.json`), the UUID instance tag
    /// (`instance`) and the idempotency key secret (`idempotency-secret`), so a restart keeps
    /// every job, every backend set, every UUID and every idempotency key.
    Dir(PathBuf),
}

/// The data directory when neither `--data-dir` nor `--ephemeral` is given.
pub const DEFAULT_DATA_DIR: &str = "appliance-data";

/// TLS: a PEM certificate chain and its PEM private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Where the credentials come from.
#[derive(Clone, PartialEq, Eq)]
pub enum Users {
    /// No authentication (the default; fine on loopback, warned about elsewhere).
    None,
    /// A file of `user:role:password` lines.
    File(PathBuf),
    /// The same lines, from the environment (`APPLIANCE_USERS`).
    Env(String),
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Users::None => f.write_str("None"),
            Users::File(p) => f.debug_tuple("File").field(p).finish(),
            Users::Env(_) => f.write_str("Env(<redacted>)"),
        }
    }
}

/// Everything the appliance is told at start.
#[derive(Clone, Debug)]
pub struct Options {
    /// Listen address (`--listen`, default `127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Worker threads (`--workers`, default 4).
    pub workers: usize,
    /// Length of one simulated job step (`--step-ms`, default 600 ms).
    pub step: Duration,
    /// How long an ended job stays readable (`--retention`, default 300 s).
    pub retention: Duration,
    /// How long running jobs may go on after SIGTERM/SIGINT before they are failed as
    /// interrupted (`--shutdown-grace`, default 10 s).
    pub shutdown_grace: Duration,
    /// Time a client has to send a request head, counted from the connection's start (or its
    /// TLS handshake) and again from the end of each response — so it is also the idle
    /// keep-alive timeout (`--header-timeout`, default 10 s).
    pub header_timeout: Duration,
    /// Connections served at once (`--max-connections`, default 8192; lowered to fit the
    /// process's open-file limit). Past it a connection gets one `503` and is closed.
    pub max_connections: usize,
    /// Largest request body (`--max-body`, default 64 KiB): a larger one is a `413`.
    pub max_body: usize,
    /// TLS (`--tls-cert` and `--tls-key`); plain HTTP without.
    pub tls: Option<Tls>,
    /// Credentials (`--users`, or `APPLIANCE_USERS`).
    pub users: Users,
    /// Where the job table lives.
    pub storage: Storage,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 4,
            step: Duration::from_millis(600),
            retention: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections: 8192,
            max_body: 64 * 1024,
            tls: None,
            users: Users::None,
            storage: Storage::Memory,
        }
    }
}

/// The usage text.
pub const USAGE: &str = "\
usage: appliance [options]
  --listen ADDR            listen address (default 127.0.0.1:8080)
  --workers N              worker threads (default 4)
  --step-ms MS             length of one simulated job step (default 600)
  --retention SECS         how long an ended job stays readable (default 300)
  --shutdown-grace SECS    running jobs' grace after SIGTERM/SIGINT (default 10)
  --header-timeout SECS    time to send a request head; also the keep-alive idle limit (default 10)
  --max-connections N      connections served at once (default 8192)
  --max-body BYTES         largest request body (default 65536)
  --tls-cert FILE          PEM certificate chain (with --tls-key: serve HTTPS)
  --tls-key FILE           PEM private key
  --users FILE             basic-auth users, `user:role:password` lines (role admin or readonly);
                           without it, the variable APPLIANCE_USERS holds the same lines
  --data-dir DIR           where jobs, configuration and UUID tag live (default ./appliance-data,
                           created on first start); an answer leaves once its change is on disk
  --ephemeral              keep nothing on disk: a restart forgets every job and backend set
";

impl Options {
    /// Parse the arguments (without the program name) and the environment variable
    /// `APPLIANCE_USERS` (`env` reads a variable). `Err` holds the message for the user
    /// (the usage for `--help`).
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Options, String> {
        let mut o = Options::default();
        let (mut cert, mut key) = (None, None);
        let mut storage = None;
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = || args.next().ok_or(format!("{a} needs a value"));
            let secs = |v: String| -> Result<Duration, String> {
                v.parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|e| format!("{a}: {e}"))
            };
            match a.as_str() {
                "--listen" => o.listen = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
                "--workers" => o.workers = number(&a, &value()?, 1..=256)?,
                "--step-ms" => o.step = Duration::from_millis(number(&a, &value()?, 0..=60_000)?),
                "--retention" => o.retention = secs(value()?)?,
                "--shutdown-grace" => o.shutdown_grace = secs(value()?)?,
                "--header-timeout" => {
                    o.header_timeout = Duration::from_secs(number(&a, &value()?, 1..=3600)?)
                }
                "--max-connections" => o.max_connections = number(&a, &value()?, 1..=1_000_000)?,
                "--max-body" => o.max_body = number(&a, &value()?, 1024..=16 << 20)?,
                "--tls-cert" => cert = Some(PathBuf::from(value()?)),
                "--tls-key" => key = Some(PathBuf::from(value()?)),
                "--users" => o.users = Users::File(PathBuf::from(value()?)),
                "--data-dir" => storage = Some(Storage::Dir(PathBuf::from(value()?))),
                "--ephemeral" => storage = Some(Storage::Memory),
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        o.storage = storage.unwrap_or_else(|| Storage::Dir(PathBuf::from(DEFAULT_DATA_DIR)));
        o.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(Tls { cert, key }),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".to_owned()),
        };
        if o.users == Users::None {
            if let Some(lines) = env("APPLIANCE_USERS").filter(|v| !v.trim().is_empty()) {
                o.users = Users::Env(lines);
            }
        }
        Ok(o)
    }
}

fn number<N: std::str::FromStr + PartialOrd + std::fmt::Display>(
    name: &str,
    text: &str,
    range: std::ops::RangeInclusive<N>,
) -> Result<N, String> {
    match text.parse::<N>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{name} must be a number from {} to {}; got {text:?}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()), |_| None)
    }

    #[test]
    fn defaults_and_values() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.shutdown_grace, Duration::from_secs(10));
        assert_eq!(o.storage, Storage::Dir(PathBuf::from(DEFAULT_DATA_DIR)));
        assert_eq!(parse(&["--ephemeral"]).unwrap().storage, Storage::Memory);
        assert_eq!(
            parse(&["--data-dir", "/var/lib/lb"]).unwrap().storage,
            Storage::Dir(PathBuf::from("/var/lib/lb"))
        );
        let o = parse(&[
            "--listen",
            "0.0.0.0:9443",
            "--shutdown-grace",
            "3",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(o.listen.port(), 9443);
        assert_eq!(o.shutdown_grace, Duration::from_secs(3));
        assert!(o.tls.is_some());
    }

    #[test]
    fn refusals() {
        for bad in [
            &["--workers", "0"][..],
            &["--tls-cert", "c.pem"],
            &["--listen"],
            &["--bogus"],
            &["--header-timeout", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_from_the_environment_are_redacted() {
        let o = Options::parse(Vec::new(), |k| {
            (k == "APPLIANCE_USERS").then(|| "admin:admin:s3cret".to_owned())
        })
        .unwrap();
        assert!(matches!(o.users, Users::Env(_)));
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
