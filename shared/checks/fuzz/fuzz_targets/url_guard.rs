//! The URL parser must never panic or accept a URL outside the policy, and the address policy
//! must judge embedded IPv4 forms like the IPv4 address itself.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kg_checks::urlguard::{is_forbidden, parse_url};
use libfuzzer_sys::fuzz_target;
use url::Host;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(url) = parse_url(text)
    {
        assert!(matches!(url.scheme(), "http" | "https"));
        assert!(url.username().is_empty() && url.password().is_none());
        match url.host() {
            Some(Host::Ipv4(v4)) => {
                let _ = is_forbidden(IpAddr::V4(v4));
            }
            Some(Host::Ipv6(v6)) => {
                let _ = is_forbidden(IpAddr::V6(v6));
            }
            Some(Host::Domain(name)) => assert!(!name.is_empty()),
            None => panic!("accepted a URL without a host"),
        }
    }
    if let Some(octets) = data.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        let v4 = Ipv4Addr::from(octets);
        let expected = is_forbidden(IpAddr::V4(v4));
        assert_eq!(is_forbidden(IpAddr::V6(v4.to_ipv6_mapped())), expected);
    }
    if let Some(octets) = data.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
        let _ = is_forbidden(IpAddr::V6(Ipv6Addr::from(octets)));
    }
});
