//! Free TCP ports on 127.0.0.1.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts later (or
/// restarts on the same address). It is taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`): a port from that range can be taken meanwhile as the local
/// port of any outgoing connection (the clients and pools of the tests running next to this
/// one), which no retry undoes. Another process may still take it before the caller binds it (a
/// race callers accept); within this process the same port is never handed out twice.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, high) = reserved_range();
    let span = u32::from(high - low);
    // start somewhere that differs between processes, then walk
    let mut candidate = low + (std::process::id() % span) as u16;
    for _ in 0..span {
        candidate = if candidate + 1 >= high {
            low
        } else {
            candidate + 1
        };
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        let handed_out = guard.get_or_insert_with(HashSet::new);
        if handed_out.contains(&candidate) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, candidate)).is_ok() {
            handed_out.insert(candidate);
            return candidate;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in {low}..{high}");
}

/// The ports `free_port` hands out: from 15000 up to the start of the ephemeral range.
fn reserved_range() -> (u16, u16) {
    const LOW: u16 = 15_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    // a kernel tuned to a wide ephemeral range leaves no room below it: use 15000-25000 anyway
    (LOW, ephemeral_start.max(LOW + 10_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let (low, high) = reserved_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| (low..high).contains(p)), "{ports:?}");
    }
}
