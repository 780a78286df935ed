//! Response bodies that stream on after their request's handling: held in
//! flight until they end, so that a graceful shutdown closes the pool
//! only after the last of them, not under a body still being sent.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::web::Bytes;
use gino::web::{Extension, ResponseHold, Then};

/// What gino-actix's request scopes do with the response once the
/// request's connection is back: a body is held in flight until it ends or
/// is dropped (a whole one as soon as actix takes its bytes), so that a
/// body that streams, its length known or not, is sent before the pool
/// closes and queries in its request's scope.
///
/// ```
/// # async fn demo(extension: gino::web::Extension) {
/// use actix_web::body::{BodyStream, MessageBody};
/// use actix_web::test::TestRequest;
/// use gino::web::Then;
/// use gino_actix::HoldStreamed;
///
/// let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(actix_web::web::Bytes::from("chunk"))]);
/// let response = TestRequest::default()
///     .to_srv_response(actix_web::HttpResponse::Ok().body(BodyStream::new(stream)));
/// let response = HoldStreamed.then(Ok(response), &extension).unwrap();
/// assert_eq!(extension.in_flight(), 1); // until the body is sent
/// drop(response);
/// assert_eq!(extension.in_flight(), 0);
/// # }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HoldStreamed;

impl<B: MessageBody> Then<Result<ServiceResponse<B>, actix_web::Error>> for HoldStreamed {
    type Output = Result<ServiceResponse<HeldBody<B>>, actix_web::Error>;

    fn then(
        self,
        output: Result<ServiceResponse<B>, actix_web::Error>,
        extension: &Extension,
    ) -> Self::Output {
        output.map(|response| {
            response.map_body(|_, body| {
                // A stream whose length was given (`Content-Length` set
                // before `streaming`) says `Sized` too, so every body with
                // bytes is held; a whole one lets go as actix takes its
                // bytes in one piece (`try_into_bytes`).
                let empty = matches!(body.size(), BodySize::None | BodySize::Sized(0));
                let hold = (!empty).then(|| extension.hold());
                HeldBody { body, hold }
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// The body of a response of gino-actix's middleware: the handler's
    /// body, and, unless it is empty, what holds its request in flight
    /// until it ends or actix takes it whole ([`HoldStreamed`]).
    pub struct HeldBody<B> {
        #[pin]
        body: B,
        hold: Option<ResponseHold>,
    }
}

impl<B: MessageBody> MessageBody for HeldBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        let chunk = ready!(match this.hold.as_ref() {
            // A tenant's body queries its tenant's database.
            Some(hold) => hold.in_scope(|| this.body.as_mut().poll_next(cx)),
            None => this.body.as_mut().poll_next(cx),
        });
        if chunk.is_none() {
            // Sent: the request is over, even if the server keeps the body.
            *this.hold = None;
        }
        Poll::Ready(chunk)
    }

    // Whole bodies keep actix's way of sending them in one piece.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let HeldBody { body, hold } = self;
        body.try_into_bytes()
            .map_err(|body| HeldBody { body, hold })
    }
}

impl<B> std::fmt::Debug for HeldBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldBody")
            .field("held", &self.hold.is_some())
            .finish_non_exhaustive()
    }
}
