//! A tiny HTTP/1.1 file server for the download tests: bound to 127.0.0.1 on a free port, serving
//! an in-memory map of paths to bytes (404 for anything else), one request per connection,
//! recording every request path. It stops when dropped, and by itself after a bounded number of
//! connections, so a failing test cannot leave it running.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served before the server thread ends on its own.
const MAX_CONNECTIONS: usize = 64;
/// How long the server waits on one client before giving up on it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read; the client sends a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

pub struct FileServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves `files`, keyed by file name, under `/mnist/`.
    pub fn start(files: &[(&str, &[u8])]) -> Self {
        let files: HashMap<String, Vec<u8>> =
            files.iter().map(|(name, bytes)| (format!("/mnist/{name}"), bytes.to_vec())).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming().take(MAX_CONNECTIONS) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // A client that misbehaves only fails its own request.
                        let _ = serve(stream, &files, &requests);
                    }
                }
            })
        };
        FileServer { addr, requests, stop, thread: Some(thread) }
    }

    /// The mirror base URL, with a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}/mnist/", self.addr)
    }

    /// Every request path seen so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("server thread panicked").clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it fails harmlessly if the thread has already ended.
        let _ = TcpStream::connect_timeout(&self.addr, CLIENT_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    requests: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    requests.lock().expect("test thread panicked holding the lock").push(path.to_string());
    let (status, body): (&str, &[u8]) = match files.get(path) {
        Some(bytes) if method == "GET" => ("200 OK", bytes),
        _ => ("404 Not Found", b"not found"),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}
