//! A deadline on reading each whole request (head and body), so a client that sends slowly cannot
//! hold a connection: `server.request_timeout`, counted from the moment the connection opens or
//! the previous response on it was produced.
//!
//! actix-web bounds only the first request head and idle keep-alive time. Two pieces cover the
//! rest:
//! - a watchdog per connection ([`on_connect`]) that shuts the socket down when a request head is
//!   still incomplete at the deadline (including a slow second request on a kept-alive
//!   connection);
//! - a middleware ([`enforce`]) that wraps the request body in a stream which fails at the same
//!   deadline, so a body sent byte by byte ends in `408` and the connection is closed.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_util::Stream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};

/// What one connection is doing, shared by its watchdog and its requests.
pub struct Connection {
    timeout: Duration,
    state: Mutex<State>,
    changed: Arc<Notify>,
    /// Dropped with the connection: stops the watchdog (which holds no strong reference, so that
    /// its copy of the socket is closed as soon as the connection is).
    _closed: DropGuard,
}

#[derive(Clone, Copy)]
struct State {
    /// A request is being handled (its body has its own deadline).
    handling: bool,
    /// When the request being read (or the next one) must be complete.
    deadline: Instant,
}

impl Connection {
    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.changed.notify_one();
    }
}

/// Hook for `HttpServer::on_connect`: starts the connection's watchdog.
pub fn on_connect(timeout: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |io, extensions| {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else { return };
        // A second handle on the socket, so the watchdog can shut it down.
        let Ok(fd) = std::os::fd::AsFd::as_fd(stream).try_clone_to_owned() else { return };
        let socket = std::net::TcpStream::from(fd);
        let closed = CancellationToken::new();
        let changed = Arc::new(Notify::new());
        let conn = Arc::new(Connection {
            timeout,
            state: Mutex::new(State { handling: false, deadline: Instant::now() + timeout }),
            changed: changed.clone(),
            _closed: closed.clone().drop_guard(),
        });
        let watched = Arc::downgrade(&conn);
        extensions.insert(conn);
        tokio::spawn(watch(watched, changed, closed, socket));
    }
}

/// Shuts the socket down when a request is still being read at its deadline.
async fn watch(conn: Weak<Connection>, changed: Arc<Notify>, closed: CancellationToken, socket: std::net::TcpStream) {
    loop {
        let Some(state) = conn.upgrade().map(|c| c.state()) else { return };
        if !state.handling && Instant::now() >= state.deadline {
            tracing::info!("request not received within server.request_timeout: connection closed");
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return;
        }
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = changed.notified() => {},
            _ = tokio::time::sleep_until(state.deadline), if !state.handling => {},
        }
    }
}

/// Middleware: bounds reading the request body by the connection's deadline, and starts the
/// next request's deadline when the response is ready.
pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let conn = req.conn_data::<Arc<Connection>>().cloned();
    if let Some(conn) = &conn {
        let deadline = conn.state().deadline;
        conn.set(State { handling: true, deadline });
        let body = req.take_payload();
        let bounded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Bounded { inner: body, timer: Box::pin(tokio::time::sleep_until(deadline)), expired: false });
        req.set_payload(Payload::from(bounded));
    }
    let result = next.call(req).await;
    if let Some(conn) = conn {
        conn.set(State { handling: false, deadline: Instant::now() + conn.timeout });
    }
    result
}

/// A request body that fails once its deadline has passed.
struct Bounded {
    inner: Payload,
    timer: Pin<Box<Sleep>>,
    expired: bool,
}

impl Stream for Bounded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not received within server.request_timeout",
            )))));
        }
        Poll::Pending
    }
}
