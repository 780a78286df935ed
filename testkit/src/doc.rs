//! Runs documentation examples against a real database of their own.
//!
//! A doc example that needs a database is written as an `async fn demo`
//! taking what it uses (nothing, a URL, an [`Engine`], a [`Gino`], a
//! [`Connection`]) and ends with a hidden `run(demo)` line; the example
//! then runs in `cargo test` on a fresh database, and fails when the demo
//! returns an error.
//!
//! ```
//! # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
//! engine.status(gino::text("CREATE TABLE notes (id int)")).await?;
//! # Ok(()) }
//! gino_testkit::doc::run(demo);
//! ```

use std::fmt::Debug;
use std::future::Future;

use gino::web::{Extension, RequestConnection, Settings};
use gino::{Connection, Engine, Gino, Tenants};

use crate::TestDatabase;

/// What a demo is handed, made on its fresh database and kept for the
/// process (so that demos may ask for `&'static` values).
pub struct Fixture {
    url: &'static str,
    engine: &'static Engine,
    db: &'static Gino,
}

impl Fixture {
    async fn new(database: &TestDatabase) -> Fixture {
        let url = database.url();
        let engine = gino::create_engine(url, gino::EngineOptions::new())
            .await
            .unwrap_or_else(|e| panic!("gino-testkit: could not connect to {url}: {e}"));
        // A default database, so that models naming none and `.gino()`
        // queries find this one.
        let db: &'static Gino = Box::leak(Box::new(Gino::new()));
        db.set_bind(engine.clone())
            .await
            .unwrap_or_else(|e| panic!("gino-testkit: could not bind the example's db: {e}"));
        Fixture {
            url: Box::leak(url.into()),
            engine: Box::leak(Box::new(engine)),
            db,
        }
    }
}

impl Fixture {
    /// A tenant registry on a database of its own whose every tenant is
    /// the example's database, told apart by `application_name`.
    fn tenants(&self) -> Tenants {
        let db: &'static Gino = Box::leak(Box::new(Gino::secondary()));
        let url = self.url;
        Tenants::builder(db, move |tenant: String| async move {
            let sep = if url.contains('?') { '&' } else { '?' };
            Ok(format!("{url}{sep}application_name=tenant_{tenant}"))
        })
        .build()
    }

    /// A web extension of a database of its own (not bound yet: the demo
    /// calls `connect`), configured for the fixture's database.
    fn extension(&self) -> Extension {
        let db: &'static Gino = Box::leak(Box::new(Gino::secondary()));
        let mut settings = Settings::default();
        settings.dsn = Some(self.url.to_owned());
        Extension::new(db, settings)
    }
}

/// What a demo may return: nothing, or a `Result` whose error fails the
/// example.
pub trait Outcome {
    /// `Err` with the error's `Debug` text when the demo failed.
    fn into_result(self) -> Result<(), String>;
}

impl Outcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> Outcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// An `async fn` a documentation example can hand to [`run`]; `Marker`
/// says which arguments it takes (inferred, never written).
pub trait Demo<Marker> {
    /// Runs the demo on the fixture's database.
    fn call(self, fixture: &Fixture) -> impl Future<Output = Result<(), String>>;
}

/// One `Demo` impl per argument list: each argument is made from the
/// fixture by its expression.
macro_rules! demo_taking {
    ($marker:ty $(; $($arg:ty = |$fixture:ident| $make:expr),*)?) => {
        impl<F, O: Outcome> Demo<($marker, O)> for F
        where
            F: AsyncFnOnce($($($arg),*)?) -> O,
        {
            #[allow(unused_variables)]
            async fn call(self, fixture: &Fixture) -> Result<(), String> {
                self($($({ let $fixture = fixture; $make }),*)?).await.into_result()
            }
        }
    };
}

demo_taking!(());
demo_taking!(String; &'static str = |f| f.url);
demo_taking!(Engine; &'static Engine = |f| f.engine);
demo_taking!((Engine, ()); Engine = |f| f.engine.clone());
demo_taking!(Gino; &'static Gino = |f| f.db);
demo_taking!((Engine, Gino); &'static Engine = |f| f.engine, &'static Gino = |f| f.db);
demo_taking!((Gino, Engine); &'static Gino = |f| f.db, &'static Engine = |f| f.engine);
demo_taking!(Extension; Extension = |f| f.extension());
demo_taking!(Tenants; Tenants = |f| f.tenants());
demo_taking!(RequestConnection; RequestConnection = |f| RequestConnection::own(f.engine));

impl<F, O: Outcome> Demo<(Connection, O)> for F
where
    F: AsyncFnOnce(&Connection) -> O,
{
    async fn call(self, fixture: &Fixture) -> Result<(), String> {
        let conn = fixture.engine.acquire().await.map_err(|e| e.to_string())?;
        let result = self(&conn).await.into_result();
        conn.release().await.map_err(|e| e.to_string())?;
        result
    }
}

impl<F, O: Outcome> Demo<(Extension, Gino, O)> for F
where
    F: AsyncFnOnce(Extension, &'static Gino) -> O,
{
    async fn call(self, fixture: &Fixture) -> Result<(), String> {
        let extension = fixture.extension();
        let db = extension.db();
        self(extension, db).await.into_result()
    }
}

/// Runs a documentation example's `demo` on a fresh database (see the
/// [module docs](self)), on a multi-thread tokio runtime of its own.
/// Panics when the demo returns an error.
pub fn run<Marker>(demo: impl Demo<Marker>) {
    run_inner(async |fixture| demo.call(fixture).await);
}

/// Like [`run`], for an example with a `static DB: Gino` of its own: `db`
/// is bound to the fresh database before `demo` runs and closed after.
pub fn run_with<Marker>(db: &'static Gino, demo: impl Demo<Marker>) {
    run_inner(async |fixture| {
        db.set_bind(fixture.engine.clone())
            .await
            .map_err(|e| e.to_string())?;
        let result = demo.call(fixture).await;
        unbind(db).await;
        result
    });
}

/// Unbinds `db` and closes its engine.
async fn unbind(db: &Gino) {
    if let Some(engine) = db.pop_bind() {
        engine.close().await;
    }
}

fn run_inner(body: impl AsyncFnOnce(&Fixture) -> Result<(), String>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("gino-testkit: could not build a tokio runtime");
    let result = runtime.block_on(async {
        let database = TestDatabase::create().await;
        let fixture = Fixture::new(&database).await;
        let result = body(&fixture).await;
        unbind(fixture.db).await;
        fixture.engine.close().await;
        result
    });
    if let Err(e) = result {
        panic!("the example failed: {e}");
    }
}
