//! A moto S3 server for the tests that need S3.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A moto S3 server on an ephemeral port, stopped on drop.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Moto {
    pub async fn start() -> Self {
        let binary = std::env::var("MSR_TEST_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server")
            });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "moto_server is required for the S3 tests ({}: {err}); .ci/run installs it",
                    binary.display()
                )
            });
        // From here on the Moto value owns the process and reaps it on drop,
        // whatever happens below.
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto_server did not start on {}", moto.endpoint);
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "creating bucket: {}",
            response.status()
        );
    }

    pub async fn object_keys(&self, bucket: &str) -> Vec<String> {
        let listing = reqwest::Client::new()
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        listing
            .split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
