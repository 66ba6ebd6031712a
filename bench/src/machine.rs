//! The machine and versions a run measured, for the report's header.

use sea_orm::ConnectionTrait;

use crate::mesh::Mesh;
use crate::report::Machine;

fn read_first(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
    })
}

pub async fn describe(mesh: &Mesh) -> Machine {
    let git = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let pg = async {
        let r = mesh
            .registration_db
            .query_one_raw(sea_orm::Statement::from_string(
                mesh.registration_db.get_database_backend(),
                "SELECT current_setting('server_version') AS v",
            ))
            .await
            .ok()??;
        r.try_get::<String>("", "v").ok()
    }
    .await
    .unwrap_or_else(|| "unknown".into());
    let redis = std::process::Command::new(
        std::env::var("KG_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
    )
    .arg("--version")
    .output()
    .ok()
    .and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v=").map(str::to_string))
    })
    .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_total_mib: read_first("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024),
        cpu_model: read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        postgres_version: pg,
        redis_version: redis,
        git_commit: git,
        load_average_at_start: String::new(),
    }
}
