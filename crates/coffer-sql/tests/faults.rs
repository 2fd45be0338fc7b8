//! Postgres restarted (crash-stopped with `pg_ctl stop -m immediate`) under a stream of
//! writes and reads, on a private server of its own (not the shared one): the store
//! reconnects by itself (its pool lends connections without a ping, so the calls' own
//! statements meet the broken connections), every write it acknowledged is there
//! afterwards, and calls during the outage fail with `Unavailable`, never with a wrong
//! value.
#![cfg(feature = "postgres")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{PgOptions, PgStore};
use coffer_store::{PutOptions, SecretStore as _};
use coffer_testkit::{name, scope, services_required};
use secrecy::ExposeSecret as _;

/// A throwaway Postgres cluster on a free loopback port, stopped when dropped.
struct PrivatePostgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok();
    let from_config = out
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("initdb").exists());
    from_config.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                !services_required(),
                "no Postgres binaries (initdb) on this machine"
            );
            eprintln!("skipped: no Postgres binaries (initdb)");
            return None;
        };
        // initdb refuses to run as root: then the cluster belongs to `postgres`.
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        let (data, socket) = (dir.path().join("data"), dir.path().join("run"));
        std::fs::create_dir_all(&socket).unwrap();
        if as_postgres {
            run(Command::new("chmod").arg("755").arg(dir.path()), "chmod");
            run(Command::new("chown").arg("postgres").arg(&socket), "chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            _dir: dir,
            data,
            socket,
            bin,
            port,
            as_postgres,
        };
        if as_postgres {
            std::fs::create_dir_all(&pg.data).unwrap();
            run(Command::new("chown").arg("postgres").arg(&pg.data), "chown");
        }
        run(
            &mut pg.command(
                "initdb",
                &[
                    "-D",
                    &pg.data.display().to_string(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        pg.ctl("start");
        Some(pg)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir("/");
        cmd
    }

    fn ctl(&self, action: &str) {
        let data = self.data.display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket.display()
        );
        let mut args = vec!["-D", &data, "-w", "-t", "30"];
        match action {
            "start" => args.extend(["-o", &options, "-l", "/dev/null", "start"]),
            _ => args.extend(["-m", "immediate", "stop"]),
        }
        run(
            &mut self.command("pg_ctl", &args),
            &format!("pg_ctl {action}"),
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_no_acknowledged_write() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let options = PgOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1));
    let store = Arc::new(
        PgStore::connect_with(pg.url().parse().unwrap(), Arc::clone(&keyring), options)
            .await
            .unwrap(),
    );
    let s = scope("faults");
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, s, stop, acked_count) = (
            Arc::clone(&store),
            s.clone(),
            Arc::clone(&stop),
            Arc::clone(&acked_count),
        );
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0usize;
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let (n, v) = (format!("k{i:05}"), format!("v{i}"));
                let put = tokio::time::timeout(
                    Duration::from_secs(10),
                    store.put(&s, &name(&n), &v.clone().into(), &PutOptions::create_only()),
                )
                .await
                .expect("a write hung");
                match put {
                    Ok(meta) => {
                        assert_eq!(meta.version, 1);
                        acked.push((n, v));
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert!(e.is_transient(), "a write failed with {e}, not Unavailable");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                i += 1;
            }
            (acked, failed)
        })
    };
    let wait_for = |n: usize| {
        let acked_count = Arc::clone(&acked_count);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while acked_count.load(Ordering::SeqCst) < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "writes did not resume"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(100).await;
    // Readers under load beside the writer: the pool lends connections without a ping,
    // so the restart is met by the reads' own statements.
    let reads_ok = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, s, stop, reads_ok) = (
                Arc::clone(&store),
                s.clone(),
                Arc::clone(&stop),
                Arc::clone(&reads_ok),
            );
            tokio::spawn(async move {
                let mut failed = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let got = tokio::time::timeout(
                        Duration::from_secs(10),
                        store.get(&s, &name("k00000"), None),
                    )
                    .await
                    .expect("a read hung");
                    match got {
                        Ok(got) => {
                            assert_eq!(got.value.expose_secret(), "v0");
                            reads_ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert!(e.is_transient(), "a read failed with {e}, not Unavailable");
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                failed
            })
        })
        .collect();
    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = acked_count.load(Ordering::SeqCst);
    pg.ctl("start");
    // The store reconnects on its own: the same handle writes again.
    wait_for(during + 100).await;
    let reads_after = reads_ok.load(Ordering::SeqCst);
    wait_for(acked_count.load(Ordering::SeqCst) + 100).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = writer.await.unwrap();
    assert!(failed > 0, "the outage was noticed");
    let mut read_failures = 0;
    for reader in readers {
        read_failures += reader.await.unwrap();
    }
    assert!(read_failures > 0, "the readers noticed the outage");
    assert!(
        reads_ok.load(Ordering::SeqCst) > reads_after,
        "reads resumed after the restart"
    );

    for (n, v) in &acked {
        let got = store.get(&s, &name(n), None).await.unwrap();
        assert_eq!(got.value.expose_secret(), v);
    }
    // A second store on the restarted server sees the same.
    let fresh = PgStore::connect(&pg.url(), keyring).await.unwrap();
    let all = coffer_store::SecretStoreExt::list_all(&fresh, &s, None)
        .await
        .unwrap();
    assert!(all.len() >= acked.len());
}
