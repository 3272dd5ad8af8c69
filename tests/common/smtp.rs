//! A real SMTP server (aiosmtpd, `tests/smtp/server.py`) for the tests of
//! e-mail notifications, and one that accepts connections and stalls.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn python() -> PathBuf {
    std::env::var("MSR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    /// Accepts every message; with `auth`, only after AUTH with it.
    pub fn start(auth: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().display().to_string();
        let mut args = vec!["--dir", dir_arg.as_str()];
        if let Some(auth) = auth {
            args.extend(["--auth", auth]);
        }
        Self::spawn(&args, dir)
    }

    /// Accepts every message, over TLS only: STARTTLS required first, or
    /// with `implicit`, TLS from the first byte. `tls` is a certificate and key.
    pub fn start_tls(tls: &TestCertificates, implicit: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().display().to_string();
        let cert = tls.cert.display().to_string();
        let key = tls.key.display().to_string();
        let mut args = vec![
            "--dir",
            dir_arg.as_str(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        if implicit {
            args.push("--implicit-tls");
        }
        Self::spawn(&args, dir)
    }

    /// Accepts every message, answering each DATA after `delay`.
    pub fn slow(delay: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().display().to_string();
        let delay = delay.as_secs_f64().to_string();
        Self::spawn(&["--dir", &dir_arg, "--delay", &delay], dir)
    }

    /// Accepts connections and never answers.
    pub fn stalling() -> Self {
        Self::spawn(&["--stall"], tempfile::tempdir().unwrap())
    }

    fn spawn(args: &[&str], dir: tempfile::TempDir) -> Self {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("python with aiosmtpd is required for the e-mail tests (.ci/run installs it into .venv): {err}")
            });
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the test SMTP server did not start (is aiosmtpd installed in .venv?)"
        );
        Self { child, port, dir }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {n} messages within {limit:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, made
/// with openssl.
pub struct TestCertificates {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCertificates {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl is required for the TLS e-mail tests");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=msr test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Self {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        }
    }
}
