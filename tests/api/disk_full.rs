//! A full disk under SQLite, for real: the database lives on a small tmpfs that the test fills.
//! Writes are answered 503 with `Retry-After` (clients retry later) instead of 500, reads go on,
//! and writes succeed again once there is room. Mounting needs root (CAP_SYS_ADMIN): elsewhere
//! the test is skipped with a notice, unless `TOKENVAULT_REQUIRE_TMPFS=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::helpers::*;

/// A tmpfs of a few MiB mounted on a fresh directory, unmounted when dropped.
struct SmallFileSystem {
    mount_point: PathBuf,
}

impl SmallFileSystem {
    fn mount(size_mib: u32) -> Option<Self> {
        let mount_point = std::env::temp_dir().join(format!("tokenvault-full-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&mount_point).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tokenvault-test"])
            .arg(&mount_point)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { mount_point }),
            outcome => {
                let _ = std::fs::remove_dir(&mount_point);
                let why = match outcome {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(error) => error.to_string(),
                };
                assert!(
                    std::env::var("TOKENVAULT_REQUIRE_TMPFS").as_deref() != Ok("1"),
                    "TOKENVAULT_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted: {why}"
                );
                eprintln!("skipping the disk-full test: cannot mount a tmpfs ({why}); run as root to include it");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
        let _ = std::fs::remove_dir(&self.mount_point);
    }
}

/// Writes a file until the file system has no room left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            assert_eq!(error.raw_os_error(), Some(28), "ENOSPC expected, got {error}");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_with_retry_after_and_reads_go_on() {
    let Some(small) = SmallFileSystem::mount(8) else { return };
    let app = spawn_sqlite_app_in(tempfile::tempdir_in(small.path()).unwrap()).await;
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "before"})).await;

    let filler = small.path().join("filler");
    fill(&filler);
    // The database's files may still hold some free pages and WAL frames: write until it is full.
    let note = "n".repeat(32 * 1024);
    let mut refused = None;
    for i in 0..256 {
        let response = app
            .post_json(
                &customers_path(ACCOUNT),
                &admin.token,
                &json!({"customer_id": format!("fill-{i}"), "note": note}),
            )
            .await;
        if response.status != 200 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a write failed once the disk was full");
    assert_error(&refused, 503, "the database is out of storage space or another resource; retry later", json!([]));
    assert_eq!(refused.header("retry-after"), Some("30"));

    // Reads go on meanwhile.
    let response = app.get(&customer_path(ACCOUNT, "before"), &admin.token).await;
    assert_eq!(response.expect_json(200)["customer_id"], json!("before"));
    let response = app.send(reqwest::Method::GET, "/health", None, None, &[]).await;
    assert_eq!(response.status, 200, "{}", response.text);

    // Room again: writes succeed, without a restart.
    std::fs::remove_file(&filler).unwrap();
    app.create_customer(&admin.token, &json!({"customer_id": "after"})).await;
    let response = app.get(&customer_path(ACCOUNT, "after"), &admin.token).await;
    assert_eq!(response.expect_json(200)["customer_id"], json!("after"));
    drop(app);
}
