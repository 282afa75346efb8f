//! A CI-sized outage burst: 100 distinct agents each report a fault (a text, then a
//! screenshot, then "完成") at once, through the simulator. Correctness only, never time:
//! every callback is acknowledged, nothing is lost (every message processed, nothing
//! dead-lettered), every agent is answered, and no member is sent more than WeCom's 30
//! messages a minute (the simulator marks messages WeCom would drop).

use std::sync::Arc;

use serde_json::Value;

use super::common::{TestApp, png};

const AGENTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_hundred_agents_is_acked_processed_and_answered() {
    let members: Vec<String> = (0..AGENTS)
        .map(|i| format!("\"agent{i:03}:客户经理{i:03}\""))
        .collect();
    let members = format!("[{}]", members.join(","));
    let app = TestApp::start_with(&[("HELPDESK__SIM__MEMBERS", &members)]).await;
    let sim = Arc::new(app.sim());
    let mut tasks = Vec::new();
    for i in 0..AGENTS {
        let sim = sim.clone();
        tasks.push(tokio::spawn(async move {
            let member = format!("agent{i:03}");
            let chat = format!("app:{member}");
            // send_full asserts that each callback was acknowledged.
            sim.send(&chat, &member, "股票交易不了，委托一直失败，客户很着急")
                .await;
            sim.send_full(&chat, &member, None, &[&png(i as u32)]).await;
            sim.send(&chat, &member, "完成").await;
        }));
    }
    for t in tasks {
        t.await.expect("an agent's messages were all acknowledged");
    }
    // Nothing lost: every stored message processed, every reply delivered or waiting on
    // the per-member limit (never dropped).
    app.settled(0).await;
    assert_eq!(app.services().inbox.pending_count(), 0);
    assert!(
        app.services()
            .inbox
            .dead_letters()
            .expect("inbox dead")
            .is_empty(),
        "no message failed"
    );
    app.assert_no_dead_letters();
    for i in 0..AGENTS {
        let member = format!("agent{i:03}");
        let chat = format!("app:{member}");
        let messages = sim.messages(&chat, 0).await;
        let replies: Vec<&Value> = messages.iter().filter(|m| m["from"] == "app").collect();
        assert!(!replies.is_empty(), "{member} was answered");
        assert!(
            messages.iter().all(|m| m["dropped"] != true),
            "{member}: a message over WeCom's per-member limit"
        );
        let sent: Vec<&Value> = messages.iter().filter(|m| m["from"] == member).collect();
        assert_eq!(sent.len(), 3);
        assert!(
            sent.iter()
                .all(|m| m["delivery"].as_str().is_some_and(|d| d.contains("已送达"))),
            "{member}: every callback acknowledged: {sent:?}"
        );
    }
}
