use gino_testkit::{Server, TestDatabase};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e:?}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn existing(names: &[String]) -> Vec<String> {
    let admin = connect(Server::get().admin_url()).await;
    admin
        .query(
            "SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname",
            &[&names],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn databases_are_separate_and_dropped() {
    let a = TestDatabase::create().await;
    let b = TestDatabase::create().await;
    assert_ne!(a.name(), b.name());
    assert_ne!(a.url(), b.url());
    let names = vec![a.name().to_owned(), b.name().to_owned()];
    assert_eq!(existing(&names).await.len(), 2);

    let client_a = connect(a.url()).await;
    let client_b = connect(b.url()).await;
    for (client, db) in [(&client_a, &a), (&client_b, &b)] {
        let row = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), db.name());
    }
    client_a
        .batch_execute("CREATE TABLE only_in_a (id int); INSERT INTO only_in_a VALUES (1)")
        .await
        .unwrap();
    let in_b = client_b
        .query_one("SELECT to_regclass('only_in_a') IS NOT NULL", &[])
        .await
        .unwrap();
    assert!(!in_b.get::<_, bool>(0));

    // Connections left open must not keep the databases alive.
    drop(a);
    drop(b);
    assert_eq!(existing(&names).await, Vec::<String>::new());
    assert!(client_a.simple_query("SELECT 1").await.is_err());
}

#[tokio::test]
async fn url_for_keeps_host_port_and_user() {
    let server = Server::get();
    let admin: Config = server.admin_url().parse().unwrap();
    let url = server.url_for("some_db");
    assert!(url.starts_with("postgres://"), "{url}");
    let other: Config = url.parse().unwrap();
    assert_eq!(other.get_dbname(), Some("some_db"));
    assert_eq!(other.get_hosts(), admin.get_hosts());
    assert_eq!(other.get_ports(), admin.get_ports());
    assert_eq!(other.get_user(), admin.get_user());
    assert_eq!(other.get_password(), admin.get_password());

    if server.is_throwaway() {
        assert_eq!(admin.get_hosts(), [Host::Tcp("127.0.0.1".to_owned())]);
        assert_eq!(admin.get_user(), Some("postgres"));
        assert_eq!(admin.get_dbname(), Some("postgres"));
    } else {
        let configured: Config = std::env::var("DATABASE_URL").unwrap().parse().unwrap();
        assert_eq!(other.get_hosts(), configured.get_hosts());
        assert_eq!(other.get_ports(), configured.get_ports());
        assert_eq!(other.get_user(), configured.get_user());
        assert_eq!(admin.get_dbname(), configured.get_dbname());
    }

    let quoted: Config = server.url_for("odd name/ü").parse().unwrap();
    assert_eq!(quoted.get_dbname(), Some("odd name/ü"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_inside_multi_thread_runtime() {
    let db = TestDatabase::create().await;
    let names = vec![db.name().to_owned()];
    connect(db.url())
        .await
        .simple_query("SELECT 1")
        .await
        .unwrap();
    drop(db);
    assert!(existing(&names).await.is_empty());
}

#[test]
fn drop_outside_any_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(TestDatabase::create());
    let names = vec![db.name().to_owned()];
    drop(db);
    assert!(runtime.block_on(existing(&names)).is_empty());
}

#[tokio::test]
async fn a_standby_replays_the_primary() {
    let primary = gino_testkit::Cluster::builder().start().expect("primary");
    let standby = primary.standby().expect("standby");
    assert_ne!(primary.port(), standby.port());
    let writer = connect(&primary.url_for("postgres")).await;
    let reader = connect(&standby.url_for("postgres")).await;
    assert!(!in_recovery(&writer).await);
    assert!(in_recovery(&reader).await);

    writer
        .batch_execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('replayed')")
        .await
        .unwrap();
    let mut seen = None;
    for _ in 0..100 {
        if let Ok(row) = reader.query_opt("SELECT body FROM notes", &[]).await {
            seen = row.map(|r| r.get::<_, String>(0));
            if seen.is_some() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen.as_deref(), Some("replayed"));
    let refused = reader
        .batch_execute("INSERT INTO notes VALUES ('no')")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
    );
}

async fn in_recovery(client: &Client) -> bool {
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0)
}
