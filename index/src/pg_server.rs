//! A throwaway PostgreSQL server for tests and benchmarks: Debian's
//! `postgresql` package (installed by `scripts/setup.sh`), a fresh cluster
//! in a directory of the caller's, listening on a free loopback port,
//! stopped when dropped. As root it runs the server as the package's
//! `postgres` user (PostgreSQL refuses to run as root).

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    /// Its connection string (user `plume`, database `postgres`).
    pub url: String,
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The directory of `initdb` and `pg_ctl`: the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin() -> io::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            err(format!(
                "PostgreSQL is not installed (/usr/lib/postgresql: {e}); run scripts/setup.sh"
            ))
        })?
        .filter_map(|d| d.ok())
        .filter_map(|d| {
            let v = d.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = d.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| err("no /usr/lib/postgresql/*/bin/initdb; run scripts/setup.sh".into()))
}

impl PgServer {
    /// Create a cluster in `dir` (which must be empty or absent) and start it.
    pub fn start(dir: &Path) -> io::Result<PgServer> {
        let bin = find_bin()?;
        std::fs::create_dir_all(dir)?;
        let as_postgres = std::fs::metadata("/proc/self")?.uid() == 0;
        if as_postgres {
            run(Command::new("chown").arg("-R").arg("postgres:").arg(dir))?;
        }
        let data = dir.join("pgdata");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let s = PgServer {
            bin,
            data,
            as_postgres,
            url: format!("host=127.0.0.1 port={port} user=plume dbname=postgres"),
        };
        s.run_pg(
            "initdb",
            &[
                "-D",
                path_str(&s.data)?,
                "-A",
                "trust",
                "-U",
                "plume",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            path_str(dir)?
        );
        let log = s.data.join("server.log");
        s.run_pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&s.data)?,
                "-o",
                &opts,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(s)
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> io::Result<()> {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args);
        run(&mut c)
    }
}

fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str()
        .ok_or_else(|| err(format!("{} is not UTF-8", p.display())))
}

fn run(c: &mut Command) -> io::Result<()> {
    let out = c.stdin(std::process::Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "{c:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(d) = self.data.to_str() {
            let _ = self.run_pg("pg_ctl", &["-D", d, "-m", "immediate", "-w", "stop"]);
        }
    }
}
