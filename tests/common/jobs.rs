//! Driving the job runner over HTTP: settings that fire, waiting for jobs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ADMIN, ADMIN_PASSWORD};

/// An HTTP client for one instance, as the admin.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD));
        if let Some(body) = body {
            request = request.json(body);
        }
        super::send(request).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(ADMIN, Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.bytes().await.unwrap().to_vec()
    }

    /// SMTP first (automatic backups need it), then the backup settings.
    pub async fn enable_backups(&self, settings: Value) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "/api/v0/meta/settings/smtp",
                Some(&json!({
                    "enabled": true,
                    "serverAddress": "127.0.0.1",
                    "serverPort": 2525,
                    "senderAddress": "msr@example.com",
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut body = json!({ "enabled": true, "distributionList": "ops@example.com" });
        body.as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "/api/v0/meta/settings/backup",
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn disable_backups(&self) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "/api/v0/meta/settings/backup",
                Some(&json!({ "enabled": false })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Starts a job; returns it as the 202 body has it.
    pub async fn start_job(&self, body: Value) -> Value {
        let (status, job) = self
            .call(reqwest::Method::POST, "/api/v0/jobs", Some(&body))
            .await;
        assert_eq!(status, 202, "{job}");
        job
    }

    pub async fn job(&self, id: &str) -> Value {
        self.get(&format!("/api/v0/jobs/{id}")).await
    }

    pub async fn jobs(&self, query: &str) -> Vec<Value> {
        self.get(&format!("/api/v0/jobs?limit=1000&{query}")).await["jobs"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The job's log lines.
    pub async fn log(&self, id: &str) -> Vec<String> {
        self.get(&format!("/api/v0/jobs/{id}/logs"))
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["data"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until the job has `status`, failing with its log if it ends otherwise.
    pub async fn wait_for_status(&self, id: &str, status: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(id).await;
            if job["status"] == status {
                return job;
            }
            let ended = ["done", "errored", "canceled"].contains(&job["status"].as_str().unwrap());
            if ended || started.elapsed() > limit {
                panic!(
                    "job {id} is {} after {:?}, not {status}; log: {:#?}",
                    job["status"],
                    started.elapsed(),
                    self.log(id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn backups(&self) -> Vec<Value> {
        self.get("/api/v0/meta/backups").await["backups"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Waits until `check` holds, polling; fails with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
