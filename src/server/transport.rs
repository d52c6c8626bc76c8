//! The tiny_http side: worker threads take requests off the listener, hand a plain view of
//! each to the routes, and write the reply — complete bodies through tiny_http, event
//! streams by hand (chunked, flushed after every event, since tiny_http buffers its own
//! chunked bodies). A handler that panicked costs its connection, never the worker.
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::connection_socket::{ConnectionSocket, Reaper};
use super::errors::ApiError;
use super::reply::{Body, EventChunks};
use super::request_log::RequestRecord;
use super::routes::{handle, route_label, Incoming};
use super::state::AppState;

/// tiny_http drains an unread request body when the request is dropped, into one buffer
/// as large as the declared `Content-Length`, so an absurd declared length aborts the
/// process (tiny-http PR #290). Requests declaring more than this are refused without
/// letting tiny_http drain them (their connection is abandoned instead).
pub const LARGEST_DRAINABLE_BODY: usize = 1 << 30;

/// Socket timeout once a request timed out: the answer is written and what is left of the
/// body read only while it is already there.
const AFTER_TIMEOUT: Duration = Duration::from_millis(100);

/// Serves requests from `server` until its listener fails.
pub fn run_worker(server: &tiny_http::Server, state: &AppState, reaper: &Reaper) {
    let local = server.server_addr().to_ip();
    loop {
        let request = match server.recv() {
            Ok(request) => request,
            Err(e) => {
                eprintln!("glimpse: the listener failed: {e}");
                return;
            }
        };
        if catch_unwind(AssertUnwindSafe(|| serve(request, local, state, reaper))).is_err() {
            eprintln!("glimpse: a request handler panicked; its connection was closed");
        }
    }
}

/// Reads a request body on first use, so `Expect: 100-continue` is only answered when the
/// handler wants the body; fails with `TimedOut` once `deadline` has passed (a client
/// trickling its body cannot hold a worker longer than the request timeout).
struct LazyBody<'a> {
    request: &'a mut tiny_http::Request,
    deadline: Instant,
}

impl Read for LazyBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive within the request timeout",
            ));
        }
        self.request.as_reader().read(buf)
    }
}

fn header_value<'a>(request: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

fn serve(
    mut request: tiny_http::Request,
    local: Option<SocketAddr>,
    state: &AppState,
    reaper: &Reaper,
) {
    let _in_flight = state.begin_request();
    let _in_use = request.remote_addr().map(|peer| reaper.in_use(*peer));
    let received = Instant::now();
    let timeout = state.config.limits.request_timeout;
    let socket = local
        .zip(request.remote_addr().copied())
        .and_then(|(local, peer)| ConnectionSocket::find(local, peer));
    if let Some(socket) = &socket {
        socket.set_timeouts(timeout);
    }
    let method = request.method().as_str().to_owned();
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let authorization = header_value(&request, "Authorization").map(str::to_owned);
    let x_api_key = header_value(&request, "X-Api-Key").map(str::to_owned);
    let cors_headers = state.config.cors.headers(
        header_value(&request, "Origin"),
        method == "OPTIONS",
        header_value(&request, "Access-Control-Request-Headers"),
    );
    let user_agent = header_value(&request, "User-Agent").map(str::to_owned);
    let client = request.remote_addr().map(|a| a.ip().to_string());
    let content_length = request.body_length();
    let version = request.http_version().clone();
    let undrainable = content_length.is_some_and(|n| n > LARGEST_DRAINABLE_BODY);
    let reply = if undrainable {
        ApiError::body_too_large(state.config.limits.max_body_bytes).into()
    } else {
        let mut body = LazyBody {
            request: &mut request,
            deadline: received + timeout.max(Duration::from_millis(1)),
        };
        handle(
            state,
            Incoming {
                method: &method,
                path: &path,
                authorization: authorization.as_deref(),
                x_api_key: x_api_key.as_deref(),
                content_length,
                body: &mut body,
            },
            received,
        )
    };
    if reply.status == 408 {
        // tiny_http reads the rest of an unread body before closing; from a client that
        // trickles it that would take as long as the client likes.
        if let Some(socket) = &socket {
            socket.set_timeouts(AFTER_TIMEOUT);
        }
    }
    let status = reply.status;
    let route = route_label(&path);
    state.metrics.record_request(route, status);
    let mut record = RequestRecord {
        status,
        route,
        client,
        user_agent,
        error: reply.error_code,
        error_detail: reply.error_detail.clone(),
        stream: matches!(reply.body, Body::EventStream(_)),
        ..RequestRecord::default()
    };
    let generation = reply.generation.clone();
    let mut headers = reply.headers;
    headers.extend(cors_headers);
    headers.push(("X-Content-Type-Options", "nosniff".into()));
    headers.push(("Content-Type", reply.content_type.to_owned()));
    let written = match reply.body {
        Body::Bytes(bytes) if undrainable => {
            refuse_without_draining(request, status, &headers, &bytes)
        }
        Body::Bytes(bytes) => {
            let mut response = tiny_http::Response::from_data(bytes).with_status_code(status);
            for header in tiny_http_headers(&headers) {
                response.add_header(header);
            }
            request.respond(response)
        }
        Body::EventStream(chunks) => {
            let chunked = (version.0, version.1) >= (1, 1);
            let mut head = format!("HTTP/{}.{} {status} OK\r\n", version.0, version.1);
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(if chunked {
                "Transfer-Encoding: chunked\r\n\r\n"
            } else {
                "Connection: close\r\n\r\n"
            });
            write_event_stream(request.into_writer(), &head, chunks, chunked)
        }
    };
    record.ms = received.elapsed().as_secs_f64() * 1e3;
    record.method = method;
    record.path = path;
    record.write_error = written.err().map(|e| e.to_string());
    record.generation = generation.and_then(|slot| slot.lock().ok().and_then(|g| g.clone()));
    state.config.log.write(&record);
}

fn tiny_http_headers<'a>(
    headers: &'a [(&'static str, String)],
) -> impl Iterator<Item = tiny_http::Header> + 'a {
    headers.iter().filter_map(|(name, value)| {
        tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
    })
}

/// Answers on the raw connection and abandons it, so tiny_http never drains the body
/// (see `LARGEST_DRAINABLE_BODY`). The connection stays open until the process ends.
fn refuse_without_draining(
    request: tiny_http::Request,
    status: u16,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = tiny_http::Response::empty(status);
    for header in tiny_http_headers(headers) {
        head.add_header(header);
    }
    let mut connection = request.upgrade("none", head);
    let written = connection.write_all(body).and_then(|()| connection.flush());
    std::mem::forget(connection);
    written
}

/// Writes the head, then every chunk as soon as it is ready; stops at the first write
/// error (the client is gone), which drops `chunks` and so cancels the generation.
fn write_event_stream(
    mut writer: Box<dyn Write + Send>,
    head: &str,
    chunks: EventChunks,
    chunked: bool,
) -> io::Result<()> {
    writer.write_all(head.as_bytes())?;
    writer.flush()?;
    for chunk in chunks.filter(|chunk| !chunk.is_empty()) {
        if chunked {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            writer.write_all(&chunk)?;
            writer.write_all(b"\r\n")?;
        } else {
            writer.write_all(&chunk)?;
        }
        writer.flush()?;
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n")?;
    }
    writer.flush()
}
