//! The status settings go through the configuration layers like every other
//! setting: default < YAML file < `PROCGROUPS_*` variable < flag, and a
//! health policy that could never be met is refused.

use std::path::{Path, PathBuf};

use super::{fake_procfs, try_load as load};

#[test]
fn health_export_intervals_layers() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let procfs = procfs.to_str().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "health_export_intervals: 5\nstatus_socket: /file.sock\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let c = load(&["--procfs", procfs], &[]).unwrap();
    assert_eq!(c.health_export_intervals, 3);
    assert_eq!(
        c.status_socket,
        procgroups::status::default_socket_path_in(|_| None)
    );

    let c = load(&["--procfs", procfs, "--config", f], &[]).unwrap();
    assert_eq!(c.health_export_intervals, 5);
    assert_eq!(c.status_socket, Path::new("/file.sock"));

    let env = [("PROCGROUPS_HEALTH_EXPORT_INTERVALS", "7")];
    let c = load(&["--procfs", procfs, "--config", f], &env).unwrap();
    assert_eq!(c.health_export_intervals, 7);

    let c = load(
        &[
            "--procfs",
            procfs,
            "--config",
            f,
            "--health-export-intervals",
            "9",
            "--status-socket",
            "/flag.sock",
        ],
        &env,
    )
    .unwrap();
    assert_eq!(c.health_export_intervals, 9);
    assert_eq!(c.status_socket, Path::new("/flag.sock"));
}

#[test]
fn zero_export_intervals_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let err = load(
        &[
            "--procfs",
            procfs.to_str().unwrap(),
            "--health-export-intervals",
            "0",
        ],
        &[],
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("health_export_intervals"), "{msg}");
    assert!(msg.contains("at least 1"), "{msg}");
}

#[test]
fn the_default_socket_follows_the_runtime_dir() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = fake_procfs(dir.path(), "proc");
    let c = load(
        &["--procfs", procfs.to_str().unwrap()],
        &[("XDG_RUNTIME_DIR", "/xdg")],
    )
    .unwrap();
    if rustix::process::geteuid().is_root() {
        // Root always uses /run/procgroups; the per-user rule is unit-tested.
        assert_eq!(c.status_socket, Path::new("/run/procgroups/status.sock"));
        return;
    }
    let uid = rustix::process::geteuid().as_raw();
    assert_eq!(
        c.status_socket,
        PathBuf::from(format!("/xdg/procgroups-{uid}/status.sock"))
    );
}
