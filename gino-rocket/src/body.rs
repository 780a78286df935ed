//! Response bodies that stream on after their request's handling: held in
//! flight until they end, so that shutdown (whose fairing waits for the
//! requests in flight) closes the pool only after the last of them, not
//! under a body still being sent.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use gino::web::{Extension, ResponseHold, Then};
use rocket::response::Body;
use rocket::route::Outcome;
use rocket::tokio::io::{AsyncRead, ReadBuf};

/// What a scoped route does with its outcome once the request's connection
/// is back: a body that streams (its size unknown) is held in flight
/// until it ends or is dropped; a body already whole is left as it is.
/// A seekable body (a file) must have been [sized](size_seekable) first,
/// or it would lose its `Content-Length`.
pub(crate) struct HoldStreamed;

impl<'r> Then<Outcome<'r>> for HoldStreamed {
    type Output = Outcome<'r>;

    fn then(self, outcome: Outcome<'r>, extension: &Extension) -> Outcome<'r> {
        let Outcome::Success(mut response) = outcome else {
            return outcome;
        };
        let body = response.body();
        if body.is_none() || body.preset_size().is_some() {
            return Outcome::Success(response);
        }
        let max_chunk = body.max_chunk_size();
        let body = response.body_mut().take();
        response.set_streamed_body(Held {
            body,
            hold: Some(extension.hold()),
        });
        response.set_max_chunk_size(max_chunk);
        Outcome::Success(response)
    }
}

/// Finds the size of a seekable body (rocket's file responders leave it
/// to be found when sent), so that it is sent whole, with its
/// `Content-Length`, rather than taken for a stream.
pub(crate) async fn size_seekable(outcome: &mut Outcome<'_>) {
    if let Outcome::Success(response) = outcome {
        response.body_mut().size().await;
    }
}

/// A streaming body and what holds its request in flight.
struct Held<'r> {
    body: Body<'r>,
    hold: Option<ResponseHold>,
}

impl AsyncRead for Held<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        let before = buf.filled().len();
        let Held { body, hold } = &mut *self;
        let mut body = Pin::new(body);
        ready!(match hold {
            // A tenant's body queries its tenant's database.
            Some(hold) => hold.in_scope(|| body.as_mut().poll_read(cx, buf)),
            None => body.as_mut().poll_read(cx, buf),
        })?;
        if room > 0 && buf.filled().len() == before {
            // Sent: the request is over, even if rocket keeps the body.
            self.hold = None;
        }
        Poll::Ready(Ok(()))
    }
}
