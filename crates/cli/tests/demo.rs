//! `lienthong demo --dir DIR --smoke`: the README's run command, in its checking form.

use std::process::Command;

#[test]
fn demo_smoke_runs_a_whole_federation_and_exits_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .arg("--smoke")
        .env("LIENTHONG_PASSPHRASE", "demo smoke test passphrase")
        .env("LIENTHONG_LOG", "warn")
        .output()
        .expect("run lienthong demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo --smoke failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("smoke test passed"), "{stdout}");
    assert!(
        stdout.contains("curl -i -H 'X-Road-Client: "),
        "prints a ready-to-paste curl: {stdout}"
    );
    let endpoints: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("demo/endpoints.json")).expect("endpoints.json"),
    )
    .expect("JSON");
    for key in [
        "client_gateway_url",
        "client_id",
        "unauthorized_client_id",
        "service_path",
        "provider_subsystem_path",
        "service_code",
        "provider_backend_url",
        "central_url",
        "ocsp_url",
        "tsa_url",
        "root_ca_pem",
        "anchor",
        "client_gateway_admin_url",
        "provider_gateway_admin_url",
        "admin_token",
    ] {
        assert!(
            endpoints[key].is_string(),
            "endpoints.json has {key}: {endpoints}"
        );
    }
    // Running it again on the same directory replaces the earlier demo.
    let again = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .arg("--smoke")
        .env("LIENTHONG_PASSPHRASE", "demo smoke test passphrase")
        .env("LIENTHONG_LOG", "warn")
        .output()
        .expect("run again");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
