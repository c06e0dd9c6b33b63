//! A followed path that stops being a readable regular file, through the real binary: a
//! directory, a FIFO, a socket, a file without read permission, a dangling symlink. For each:
//! one warning when the path changes state, no busy loop (serve's CPU time over a window stays
//! low), and the lines of a readable regular file put back are read at once. A symlink is
//! followed to its target.
//!
//! Root reads a file whatever its mode, so when the tests run as root, serve runs as `nobody`
//! (`setpriv`) and `chmod 000` means what it means to an operator's sidecar.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, append, dispatch, dispatched, free_port, pace, until};

/// CPU time (user + system) of process `pid`, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): state is field 3.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Puts something at a path.
type MakeAt = dyn Fn(&Path);

fn warnings(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("followed path is not a readable regular file"))
        .count()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

#[test]
fn hostile_paths_warn_once_never_spin_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("app.log");
    let log = dir.path().join("serve.log");
    append(&path, &dispatch("h0"));
    let port = free_port();
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_claimcheck"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_claimcheck"))
    };
    let server = Server(
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--file"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    until(30, "the first line", || dispatched(port) == Some(1));

    let mut n = 1u64;
    let mut warned = 0;
    let hostile: [(&str, &MakeAt); 5] = [
        ("a directory", &|p| std::fs::create_dir(p).unwrap()),
        ("a FIFO", &|p| {
            let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
            assert!(ok, "mkfifo");
        }),
        ("a socket", &|p| {
            // Bound and left: the socket file stays after the listener goes.
            std::os::unix::net::UnixListener::bind(p).unwrap();
        }),
        ("a file without read permission", &|p| {
            // Created unreadable (written, then chmodded, it was readable for a moment: a
            // poll then saw a readable file first; once, under load, a warning more came).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o000)
                .open(p)
                .unwrap();
        }),
        ("a dangling symlink", &|p| {
            std::os::unix::fs::symlink(p.with_file_name("target.log"), p).unwrap();
        }),
    ];
    for (what, make) in hostile {
        // The regular file goes; the path becomes something else.
        std::fs::remove_file(&path).unwrap();
        make(&path);
        warned += 1;
        until(30, &format!("one warning for {what}"), || {
            warnings(&log) >= warned
        });
        let before = cpu_ticks(pid);
        let window = Instant::now();
        pace(Duration::from_millis(1500));
        let used = cpu_ticks(pid) - before;
        let wall = window.elapsed().as_millis() as u64 / 10;
        assert!(
            used * 5 <= wall,
            "{what}: serve used {used} ticks of CPU in {wall} (a busy loop?)"
        );
        assert_eq!(
            warnings(&log),
            warned,
            "{what}: one warning per change of state; the log's:\n{}",
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("path_state"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // A readable regular file back at the path (through the symlink: its target) is read.
        if what == "a dangling symlink" {
            append(
                &path.with_file_name("target.log"),
                &dispatch(&format!("h{n}")),
            );
        } else {
            if path.is_dir() {
                std::fs::remove_dir(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
            append(&path, &dispatch(&format!("h{n}")));
        }
        n += 1;
        until(30, &format!("the line written after {what}"), || {
            dispatched(port) == Some(n)
        });
    }
    // The symlink is followed to its target: written through the target's name, then a
    // symlink to another file swapped in (the old target keeps being read until idle).
    append(&path.with_file_name("target.log"), &dispatch("s1"));
    let other = path.with_file_name("other.log");
    append(&other, &dispatch("s2"));
    let tmp = path.with_file_name("swap.link");
    std::os::unix::fs::symlink(&other, &tmp).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    append(&path.with_file_name("target.log"), &dispatch("s3"));
    until(30, "the symlinks' targets", || {
        dispatched(port) == Some(n + 3)
    });
    assert_eq!(warnings(&log), warned, "no warning for a readable file");
    drop(server);
}
