//! An etcd cluster on loopback for tests: `n` members, each with its own data directory and
//! ports, started from Debian's `etcd` binary and killed when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub dir: PathBuf,
    pub members: Vec<Member>,
    initial: String,
}

pub struct Member {
    pub name: String,
    pub client: u16,
    pub peer: u16,
    pub child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl Cluster {
    pub fn start(n: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "jobstate-etcd-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_tag()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_port(),
                peer: free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            dir,
            members,
            initial,
        };
        for i in 0..n {
            cluster.start_member(i);
        }
        cluster.wait_healthy();
        cluster
    }

    pub fn start_member(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.join(&m.name);
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client))
            .arg("--advertise-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer))
            .arg("--initial-cluster")
            .arg(&self.initial)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("jobstate-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server) must be on PATH");
        self.members[i].child = Some(child);
    }

    /// kill -9 member `i`.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// Wait until every running member answers its health endpoint.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for m in &self.members {
            if m.child.is_none() {
                continue;
            }
            loop {
                let ok = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(format!("http://127.0.0.1:{}", m.client))
                    .arg("endpoint")
                    .arg("health")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {} not healthy",
                    m.name
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
