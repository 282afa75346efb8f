//! Chaos, CI-sized: WeCom's API fails while agents keep writing (error codes, then refused
//! connections, then answers that hang past the client's deadline), then recovers. Every
//! reply must arrive, in order per member, none twice.
//!
//! WeCom is a simulator on its own port, so it can be taken off the network and brought
//! back while the gateway runs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use wecom_helpdesk::sim::{ChatId, Sim, SimSettings};

use super::common::{SimClient, TestApp, texts};

const MEMBERS: [&str; 4] = ["zhangsan", "lisi", "wangwu", "zhaoliu"];
/// Each member's messages, and a piece of each reply, in order.
const TURNS: [(&str, &str); 3] = [
    ("帮助", "事件助手"),
    ("进度", "工单"),
    ("取消", "没有进行中的提单"),
];

/// Serve the simulator's routes on `listener` until the returned task is aborted.
fn serve(sim: &Arc<Sim>, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let router = axum::Router::new().nest("/sim", wecom_helpdesk::sim::router(sim.clone()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

async fn say(sim: &Arc<Sim>, member: &str, text: &str) {
    let chat = ChatId::App(member.to_owned());
    let outcome = sim
        .member_send(&chat, member, Some(text), &[])
        .await
        .expect("sent");
    assert!(outcome.ok, "the gateway acknowledged: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_survive_a_wecom_outage_in_order_and_once() {
    let wecom = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let wecom_addr = wecom.local_addr().expect("addr");
    let api_base = format!("http://{wecom_addr}/sim");
    let app = TestApp::start_with(&[
        ("HELPDESK__SIM__ENABLED", "false"),
        ("HELPDESK__CONSOLE__DEMO_ACCOUNTS", "false"),
        ("HELPDESK__WECOM__API_BASE", &api_base),
        ("HELPDESK__OUTBOX__HTTP_TIMEOUT_SECS", "1"),
    ])
    .await;
    let sim = Sim::new(
        SimSettings::from_config(&app.cfg, app.base.clone(), api_base.clone()).expect("settings"),
    )
    .expect("sim");
    let mut server = serve(&sim, wecom);
    let hooks = SimClient {
        base: api_base.clone(),
        http: app.http.clone(),
    };

    // 1. WeCom answers with errors.
    hooks
        .post(
            "/api/faults",
            json!({ "endpoint": "message/send", "codes": [-1, -1, 45009, -1, -1, -1] }),
        )
        .await;
    for m in MEMBERS {
        say(&sim, m, TURNS[0].0).await;
    }

    // 2. WeCom is unreachable: connections are refused.
    server.abort();
    let _ = server.await;
    for m in MEMBERS {
        say(&sim, m, TURNS[1].0).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 3. WeCom is back but hangs past the client's deadline, then answers again.
    let wecom = TcpListener::bind(wecom_addr).await.expect("rebind");
    server = serve(&sim, wecom);
    hooks
        .post(
            "/api/faults",
            json!({ "endpoint": "message/send", "hang_ms": 1500 }),
        )
        .await;
    for m in MEMBERS {
        say(&sim, m, TURNS[2].0).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    hooks
        .post(
            "/api/faults",
            json!({ "endpoint": "message/send", "hang_ms": 0 }),
        )
        .await;

    // Recovery: everything arrives, in order, once.
    for m in MEMBERS {
        let chat = format!("app:{m}");
        for _ in 0..240 {
            if hooks.replies(&chat, m, 0).await.len() >= TURNS.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    app.settled(0).await;
    for m in MEMBERS {
        let replies = hooks.replies(&format!("app:{m}"), m, 0).await;
        let got = texts(&replies);
        assert_eq!(got.len(), TURNS.len(), "{m}: {got:?}");
        for (reply, (_, expect)) in got.iter().zip(TURNS) {
            assert!(reply.contains(expect), "{m}: in order: {got:?}");
        }
    }
    app.assert_no_dead_letters();
    server.abort();
}
