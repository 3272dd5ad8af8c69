//! OCI image layouts made on the spot, and skopeo to move them.

use std::process::Command;

use serde_json::json;
use sha2::{Digest as _, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout with a linux/arm64 image of gzip layers, tagged `v1`.
/// Returns the manifest's digest and the layer digests.
pub struct OciImage {
    pub dir: tempfile::TempDir,
    pub manifest_digest: String,
    pub layer_digests: Vec<String>,
    pub total_size: u64,
}

pub fn oci_image(layer_sizes: &[usize]) -> OciImage {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write_blob = |bytes: &[u8]| -> String {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        digest
    };
    let mut layers = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for (i, size) in layer_sizes.iter().enumerate() {
        // Incompressible content, as real layers are after gzip.
        let content: Vec<u8> = (0..*size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join(format!("file{i}")), &content).unwrap();
        let tarball = work.path().join("layer.tar");
        let status = Command::new("tar")
            .args([
                "-cf",
                tarball.to_str().unwrap(),
                "-C",
                work.path().to_str().unwrap(),
                &format!("file{i}"),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let diff_id = sha256(&std::fs::read(&tarball).unwrap());
        let status = Command::new("gzip")
            .args(["-1", "-n", tarball.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(work.path().join("layer.tar.gz")).unwrap();
        layers.push((write_blob(&bytes), bytes.len(), diff_id));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "arm64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>()}
    }))
    .unwrap();
    let config_digest = write_blob(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|(digest, size, _)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let manifest_digest = write_blob(&manifest);
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let total_size =
        (manifest.len() + config.len() + layers.iter().map(|l| l.1).sum::<usize>()) as u64;
    OciImage {
        dir,
        manifest_digest,
        layer_digests: layers.into_iter().map(|l| l.0).collect(),
        total_size,
    }
}

pub fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo is required for these tests (apt-get install skopeo; .ci/run installs it)")
}

pub fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

pub fn push(image: &OciImage, host: &str, target: &str, creds: &str) -> std::process::Output {
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-creds",
        creds,
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", image.dir.path().display()),
        &format!("docker://{host}/{target}"),
    ])
}

/// Pulls `host/reference` with skopeo into a new OCI layout and checks that
/// it is `image`: the same manifest digest and byte-identical layers.
pub fn assert_pulls(image: &OciImage, host: &str, reference: &str, creds: &str) {
    let out = tempfile::tempdir().unwrap();
    let pulled = skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-creds",
        creds,
        "--src-tls-verify=false",
        &format!("docker://{host}/{reference}"),
        &format!("oci:{}:v1", out.path().display()),
    ]);
    assert!(
        pulled.status.success(),
        "skopeo pull: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        image.manifest_digest.as_str()
    );
    for layer in &image.layer_digests {
        let path = |root: &std::path::Path| root.join("blobs/sha256").join(&layer[7..]);
        assert_eq!(
            std::fs::read(path(out.path())).unwrap(),
            std::fs::read(path(image.dir.path())).unwrap(),
            "layer {layer}"
        );
    }
}
