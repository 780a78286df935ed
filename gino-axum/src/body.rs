//! Response bodies that stream on after their request's handling: held in
//! flight until they end, so that `close()` closes the pool only after the
//! last of them, and run in their request's tenant scope.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::response::Response;
use gino::web::{Extension, ResponseHold, Then};
use http_body::{Body as _, Frame, SizeHint};

/// What gino-axum's request scopes do with the response once the request's
/// connection is back: a body that streams (its size unknown) is held in
/// flight until it ends or is dropped; a body already whole costs nothing.
///
/// ```
/// # async fn demo(extension: gino::web::Extension) {
/// use axum::body::Body;
/// use axum::response::Response;
/// use gino::web::Then;
/// use gino_axum::HoldStreamed;
///
/// let stream = futures_util::stream::iter([Ok::<_, std::io::Error>("chunk")]);
/// let answer: Result<Response, ()> = Ok(Response::new(Body::from_stream(stream)));
/// let answer = HoldStreamed.then(answer, &extension).unwrap();
/// assert_eq!(extension.in_flight(), 1); // until the body is sent
/// drop(answer);
/// assert_eq!(extension.in_flight(), 0);
/// # }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldStreamed;

impl<E> Then<Result<Response, E>> for HoldStreamed {
    type Output = Result<Response, E>;

    fn then(self, output: Result<Response, E>, extension: &Extension) -> Self::Output {
        output.map(|response| {
            if response.body().size_hint().exact().is_some() {
                return response;
            }
            response.map(|body| {
                Body::new(Held {
                    body,
                    hold: Some(extension.hold()),
                })
            })
        })
    }
}

/// A streaming body and what holds its request in flight.
struct Held {
    body: Body,
    hold: Option<ResponseHold>,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Held { body, hold } = &mut *self;
        let mut body = Pin::new(body);
        let frame = ready!(match hold {
            // A tenant's body queries its tenant's database.
            Some(hold) => hold.in_scope(|| body.as_mut().poll_frame(cx)),
            None => body.as_mut().poll_frame(cx),
        });
        if frame.is_none() {
            // Sent: the request is over, even if the server keeps the body.
            self.hold = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
