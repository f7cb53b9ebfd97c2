//! `tokenvault health`: the container image's health check (Dockerfile `HEALTHCHECK`), which needs
//! no curl. Exit 0 when `GET /health` answers 200, 1 otherwise (nothing listening, another
//! status), with the reason on stderr.

use std::process::{Command, Output};

use tokenvault::settings::ServeConfig;

fn health(args: &[&str], listen: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenvault"));
    command.arg("health").args(args).env_remove("TOKENVAULT_LISTEN");
    if let Some(listen) = listen {
        command.env("TOKENVAULT_LISTEN", listen);
    }
    command.output().unwrap()
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn health_exits_0_when_the_server_answers_200_and_1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        tokenvault::app::start(ServeConfig::new(format!("sqlite://{}/tv.db", dir.path().display()).parse().unwrap()))
            .await
            .unwrap();
    let url = server.url();
    let port = url.rsplit(':').next().unwrap().to_owned();

    let (up, from_listen, wildcard, not_found, down) = tokio::task::spawn_blocking(move || {
        (
            health(&["--url", &format!("{url}/health")], None),
            // Without --url: the address the server is told to listen on (TOKENVAULT_LISTEN).
            health(&[], Some(&format!("127.0.0.1:{port}"))),
            // A wildcard listen address is asked on loopback.
            health(&[], Some(&format!("0.0.0.0:{port}"))),
            health(&["--url", &format!("{url}/no-such-path")], None),
            health(&["--url", &format!("http://127.0.0.1:{}/health", closed_port())], None),
        )
    })
    .await
    .unwrap();
    server.shutdown().await;

    for (what, output) in [("--url", &up), ("TOKENVAULT_LISTEN", &from_listen), ("0.0.0.0", &wildcard)] {
        assert_eq!(output.status.code(), Some(0), "{what}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "ok\n", "{what}");
    }
    assert_eq!(not_found.status.code(), Some(1));
    assert!(not_found.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&not_found.stderr);
    assert!(stderr.ends_with("/no-such-path answered 404 Not Found\n"), "{stderr}");
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.starts_with("tokenvault: health: GET http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("/health failed: "), "{stderr}");
}
