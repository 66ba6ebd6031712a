//! The offline demo's website: `koogallery up` serves the English sites of the two example
//! companies (examples/application.yaml, examples/application-2.yaml) on one loopback address
//! of their own, and lets the website check reach that address and no other private one.
//!
//! Why a dedicated address (127.0.80.1) rather than 127.0.0.1: the SSRF guard's exceptions are
//! whole addresses, and on 127.0.0.1 the check could reach every local port — the mesh's own
//! gRPC and metrics ports among them. On 127.0.80.1 only this site listens (and services bound
//! to every interface, which is why `up` keeps the exception off when it binds to one).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Where the demo site listens; the example applications name it as their website.
pub const DEMO_SITE: &str = "127.0.80.1:8080";

const FIRST: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Fuzhou Example Software</title></head>
<body>
<h1>Fuzhou Example Software Co., Ltd.</h1>
<p>Example Software builds monitoring and backup tools for small and medium businesses running
on the cloud. Our products watch your servers and databases around the clock, warn you before
a disk fills up, and keep daily backups you can restore with one click.</p>
<p>Contact our support team at support@example.com or call +86 591 8765 4321.</p>
</body>
</html>
"#;

const SECOND: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Xiamen Harbor Data</title></head>
<body>
<h1>Xiamen Harbor Data Co., Ltd.</h1>
<p>Harbor Data builds reporting and data pipeline tools for logistics companies. Our software
collects shipment records from many systems, cleans them, and turns them into reports that
planners can read every morning.</p>
<p>Write to hello@harbor.example for a demonstration.</p>
</body>
</html>
"#;

/// The page of `path`, if the site has one.
fn page(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/index.html" => Some(FIRST),
        "/harbor/" | "/harbor/index.html" => Some(SECOND),
        _ => None,
    }
}

/// Binds the demo site. `Err` when the address is taken or missing (for example on a system
/// that only configures 127.0.0.1); `up` then runs without it and says why.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves GET requests until the task is dropped; one short response per connection.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            // The request line is all we read: the site is static.
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            while len < buf.len() {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let mut words = request.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (status, body) = match page(path) {
                Some(body) if method == "GET" || method == "HEAD" => ("200 OK", body),
                Some(_) => ("405 Method Not Allowed", ""),
                None => ("404 Not Found", ""),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Language: en\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = stream.write_all(body.as_bytes()).await;
            }
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_two_example_sites_and_nothing_else() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let first = get("/").await;
        assert!(first.starts_with("HTTP/1.1 200") && first.contains("Fuzhou Example Software"));
        assert!(get("/harbor/").await.contains("Xiamen Harbor Data"));
        assert!(get("/metrics").await.starts_with("HTTP/1.1 404"));
    }
}
