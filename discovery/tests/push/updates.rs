//! Changes after the first push: fan-out, debounce, skipping no-op pushes, latest wins.

use std::time::{Duration, Instant};

use discovery::push::PushKind;

use super::support::{FakeSource, QUIET, RawGateway, TestServer, cluster_names};

#[tokio::test]
async fn change_reaches_every_gateway_with_its_own_config() {
    let source = FakeSource::new();
    source.set("east", &["east-a"]);
    source.set("west", &["west-a"]);
    let server = TestServer::start(source.clone()).await;
    let mut east = RawGateway::connect(server.addr, "east").await;
    let mut west = RawGateway::connect(server.addr, "west").await;
    assert_eq!(cluster_names(&east.next_acked().await), ["east-a"]);
    assert_eq!(cluster_names(&west.next_acked().await), ["west-a"]);

    source.set("east", &["east-a", "east-b"]);
    source.set("west", &["west-b"]);
    let east_update = east.next_acked().await;
    let west_update = west.next_acked().await;
    assert_eq!(east_update.version, "2");
    assert_eq!(cluster_names(&east_update), ["east-a", "east-b"]);
    assert_eq!(west_update.version, "2");
    assert_eq!(cluster_names(&west_update), ["west-b"]);
    assert_eq!(server.metrics.pushes(PushKind::Initial), 2);
    assert_eq!(server.metrics.pushes(PushKind::Update), 2);
}

#[tokio::test]
async fn burst_of_changes_is_coalesced() {
    let source = FakeSource::new();
    source.set("eastwest", &["c-initial"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;
    let computed_before = source.computed();

    // The gateway answers at once, all through the burst, so only the debounce can coalesce.
    let reader = tokio::spawn(async move {
        let mut pushes = Vec::new();
        while let Some(push) = gateway.next_push_within(QUIET).await {
            let config = push.config.unwrap();
            gateway.ack(&config.version).await;
            pushes.push(config);
        }
        pushes
    });

    // 50 distinct configurations within 50 ms.
    for n in 0..50 {
        source.set("eastwest", &[format!("c{n}").as_str()]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let pushes = reader.await.unwrap();
    assert!(
        (1..=3).contains(&pushes.len()),
        "{} pushes for one burst",
        pushes.len()
    );
    assert_eq!(cluster_names(pushes.last().unwrap()), ["c49"]);
    assert!(
        source.computed() - computed_before <= 3,
        "{} computations for one burst",
        source.computed() - computed_before
    );
}

#[tokio::test]
async fn push_waits_for_the_quiet_period() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;

    let changed = Instant::now();
    source.set("eastwest", &["b"]);
    gateway.next_acked().await;
    // The default quiet period is 100 ms; allow scheduling slack below it.
    assert!(
        changed.elapsed() >= Duration::from_millis(90),
        "pushed after {:?}",
        changed.elapsed()
    );
}

#[tokio::test]
async fn unchanged_config_is_not_pushed_again() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    source.set("other", &["x"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;

    // Inputs change, but not this gateway's config.
    source.bump();
    source.set("other", &["y"]);
    assert!(gateway.next_push_within(QUIET).await.is_none());
    assert!(source.computed() >= 2, "the server did recompute");
    assert_eq!(server.metrics.pushes(PushKind::Update), 0);

    // A real change still goes out, with the next version.
    source.set("eastwest", &["b"]);
    let update = gateway.next_config().await;
    assert_eq!(update.version, "2");
    assert_eq!(cluster_names(&update), ["b"]);
}

#[tokio::test]
async fn next_push_waits_for_the_answer_and_carries_the_latest_config() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    let first = gateway.next_config().await;

    source.set("eastwest", &["b"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    source.set("eastwest", &["c"]);
    assert!(
        gateway.next_push_within(QUIET).await.is_none(),
        "nothing is pushed while version 1 is unanswered"
    );

    gateway.ack(&first.version).await;
    let latest = gateway.next_acked().await;
    assert_eq!(latest.version, "2");
    assert_eq!(cluster_names(&latest), ["c"]);
    assert!(gateway.next_push_within(QUIET).await.is_none());
}

#[tokio::test]
async fn slow_gateway_does_not_delay_the_others() {
    let source = FakeSource::new();
    source.set("slow", &["s1"]);
    source.set("fast", &["f1"]);
    let server = TestServer::start(source.clone()).await;
    let mut slow = RawGateway::connect(server.addr, "slow").await;
    let mut fast = RawGateway::connect(server.addr, "fast").await;
    slow.next_config().await; // and never answered, nor read again
    fast.next_acked().await;

    for round in 2..6 {
        source.set("slow", &[format!("s{round}").as_str()]);
        source.set("fast", &[format!("f{round}").as_str()]);
        let started = Instant::now();
        let update = fast.next_acked().await;
        assert_eq!(cluster_names(&update), [format!("f{round}").as_str()]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast gateway waited {:?}",
            started.elapsed()
        );
    }

    // Once the slow gateway answers, it skips straight to the newest config.
    slow.ack("1").await;
    let caught_up = slow.next_config().await;
    assert_eq!(caught_up.version, "2");
    assert_eq!(cluster_names(&caught_up), ["s5"]);
}
