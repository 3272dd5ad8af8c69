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

    /// A listing of `bucket` (S3's XML), as `GET /<bucket>?<query>` answers it.
    async fn listing(&self, bucket: &str, query: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}/{bucket}?{query}", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The AWS variables that point msr at this server.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        aws_env(&self.endpoint)
    }

    /// Multipart uploads started in `bucket` and neither completed nor aborted.
    pub async fn open_uploads(&self, bucket: &str) -> usize {
        self.listing(bucket, "uploads")
            .await
            .matches("<Upload>")
            .count()
    }

    pub async fn object_keys(&self, bucket: &str) -> Vec<String> {
        self.listing(bucket, "list-type=2")
            .await
            .split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap().to_owned())
            .collect()
    }
}

/// The AWS variables that point msr at `endpoint`: moto, or a proxy in
/// front of it.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ]
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP proxy in front of moto that can refuse the deletion of chosen
/// objects with S3's `AccessDenied`, a storage failure that no retry gets
/// past, while everything else goes through.
pub struct DenyingProxy {
    pub endpoint: String,
    denied: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DenyingProxy {
    pub async fn start(moto: &Moto) -> Self {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::http::{Method, StatusCode};
        use axum::response::Response;

        type Shared = (
            String,
            reqwest::Client,
            std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        );
        async fn forward(
            State((upstream, http, denied)): State<Shared>,
            request: Request,
        ) -> Response {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            // object_store deletes with DeleteObjects (a POST to ?delete
            // listing the keys), DELETE otherwise.
            let denied_here = |text: &str| {
                denied.lock().unwrap().iter().any(|suffix| {
                    text.contains(&format!("{suffix}<")) || text.ends_with(suffix.as_str())
                })
            };
            let deleting = parts.method == Method::DELETE && denied_here(parts.uri.path())
                || parts.method == Method::POST
                    && parts.uri.query().is_some_and(|q| q.starts_with("delete"))
                    && denied_here(&String::from_utf8_lossy(&body));
            if deleting {
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .header("content-type", "application/xml")
                    .body(Body::from(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                         <Message>Access Denied</Message></Error>",
                    ))
                    .unwrap();
            }
            let target = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in &parts.headers {
                if name != "host" {
                    headers.insert(
                        reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                        reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                    );
                }
            }
            let answer = http
                .request(method, target)
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                response = response.header(name.as_str(), value.as_bytes());
            }
            response
                .body(Body::from(answer.bytes().await.unwrap()))
                .unwrap()
        }

        let denied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state((
            moto.endpoint.clone(),
            reqwest::Client::new(),
            denied.clone(),
        ));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            endpoint,
            denied,
            task,
        }
    }

    /// Refuses to delete objects whose path ends with `suffix`.
    pub fn deny_deletes_of(&self, suffix: &str) {
        self.denied.lock().unwrap().push(suffix.to_owned());
    }

    pub fn allow_all(&self) {
        self.denied.lock().unwrap().clear();
    }
}

impl Drop for DenyingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
