//! The web console in a real browser (headless Chromium through
//! chromedriver), against the five service binaries: an operator finds a
//! sale and its attempts, replays its dead letter (a dry-run count first)
//! and sees it delivered; scoped viewers cannot open another tenant's sale;
//! tenant A sets up an integration with B on pages alone — Test connection,
//! import, map, fix what the mapping check flags — and A's sale arrives at
//! B. Every page is screenshotted at 1280 and 390 px under
//! `target/test-artifacts/` and must show text and not overflow at 390 px.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use salesync_core::domain::SaleId;
use salesync_e2e::browser::Browser;
use salesync_e2e::partner::{self, A_FLOW, B_FLOW, FIXED};
use salesync_e2e::sales::sale;
use salesync_e2e::{Behaviour, Stack, StackOptions, Tenant, TestTarget, wait_for};
use serde_json::json;

const PAGE_WAIT: Duration = Duration::from_secs(20);

/// The sale's deliveries once one is in `state`.
async fn delivery_in(t: &Tenant, id: SaleId, state: &str) {
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let v = t.api.get_sale(id).await.ok()?;
            v.deliveries.iter().any(|d| d.state == state).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("sale {id} never had a {state} delivery ({e})"));
}

/// The status `GET path` answers in a session signed in with `token`
/// (a plain HTTP client: the browser does not show status codes).
async fn status_in_session(console: &str, token: &str, path: &str) -> StatusCode {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{console}/ui/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("token={token}&next=%2Fui%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "sign-in");
    let cookie = login.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    http.get(format!("{console}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// An operator account from the console's CLI, as a person would make one.
async fn create_operator(stack: &Stack, name: &str, tenant: &Tenant) -> String {
    let out = tokio::process::Command::new(salesync_e2e::services::bin_dir().join("console"))
        .args([
            "admin",
            "create-operator",
            "--name",
            name,
            "--tenant",
            &tenant.id.to_string(),
        ])
        .env("DATABASE_URL", stack.db.url())
        .env("AMQP_URL", stack.amqp_url())
        .output()
        .await
        .expect("console admin create-operator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    created["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_finds_a_sale_and_replays_its_dead_letter() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let console = stack.console_url();
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let b = stack.tenant("Shop B").await.expect("tenant B");
    // Books refuses everything for now: A's sale dies there.
    let books = TestTarget::start(Behaviour::Always(400))
        .await
        .expect("target");
    a.webhook_to(&books, "Books").await.expect("integration");
    let sold = a
        .api
        .post_sale(&sale("R-1001", "paid", "SKU-1"))
        .await
        .expect("sale")
        .id;
    let booked_by_hand = a
        .api
        .post_sale(&sale("R-1002", "paid", "SKU-1"))
        .await
        .expect("sale")
        .id;
    b.api
        .post_sale(&sale("B-2001", "paid", "SKU-2"))
        .await
        .expect("sale of B");
    delivery_in(&a, sold, "dead").await;
    delivery_in(&a, booked_by_hand, "dead").await;
    let dead_of = |id: SaleId| {
        let api = a.api.clone();
        async move { api.get_sale(id).await.unwrap().deliveries[0].id.to_string() }
    };
    let (to_replay, to_discard) = (dead_of(sold).await, dead_of(booked_by_hand).await);

    let mut web = Browser::start("operator").await.expect("browser");
    web.goto(&format!("{console}/ui/overview")).await.unwrap();
    assert!(
        web.url().await.contains("/ui/login"),
        "signed out, a page asks to sign in"
    );
    web.sign_in(&console, stack.admin_token()).await.unwrap();
    assert!(
        web.url().await.ends_with("/ui/overview"),
        "back where it was asked for"
    );
    web.wait_text("#main", "salesync.forward", PAGE_WAIT)
        .await
        .unwrap();
    // RabbitMQ's statistics trail by a few seconds: reload until every work
    // queue shows its consumer.
    let overview = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            web.goto(&format!("{console}/ui/overview")).await.ok()?;
            let text = web.text("#main").await.ok()?;
            (!text.contains("no consumer")).then_some(text)
        },
    )
    .await
    .expect("every work queue has a consumer");
    for needed in [
        "salesync.sale-events",
        "salesync.dead",
        "retry tier",
        "forwarder",
        "ready",
        "Throughput per minute",
    ] {
        assert!(
            overview.contains(needed),
            "the overview shows {needed}: {overview}"
        );
    }
    web.snapshot("overview").await.unwrap();

    web.goto(&format!("{console}/ui/integrations"))
        .await
        .unwrap();
    let row = web
        .text("#integrations tr.sick")
        .await
        .expect("the dying integration stands out");
    assert!(
        row.contains("Books") && row.contains("dead letters"),
        "{row}"
    );
    web.snapshot("integrations").await.unwrap();

    // Find the sale by external id: one match opens its timeline.
    web.goto(&format!("{console}/ui/sales")).await.unwrap();
    web.fill("input[name=q]", "R-1001").await.unwrap();
    web.click("form[role=search] button").await.unwrap();
    let timeline = web
        .wait_text("#timeline", "HTTP 400", PAGE_WAIT)
        .await
        .unwrap();
    for needed in [
        "Accepted (R-1001)",
        "Condition check for Books: forward",
        "Attempt 1 to Books: HTTP 400",
        "Dead letter",
    ] {
        assert!(
            timeline.contains(needed),
            "the timeline shows {needed}: {timeline}"
        );
    }
    assert!(web.text("#main").await.unwrap().contains("Trace id"));
    // Times are the viewer's (the browser runs in Europe/Amsterdam).
    let shown = web.text("#timeline time").await.unwrap();
    assert!(
        shown.contains("GMT+1") || shown.contains("CET"),
        "a local time: {shown}"
    );
    web.snapshot("sale-timeline").await.unwrap();

    // Replay from the list: the dry-run count first, then the replay.
    web.goto(&format!("{console}/ui/dead-letters?reason=400"))
        .await
        .unwrap();
    web.wait_text("#dead-letters", "R-1001", PAGE_WAIT)
        .await
        .unwrap();
    web.snapshot("dead-letters").await.unwrap();
    web.click(&format!("#dead-letters input[value='{to_replay}']"))
        .await
        .unwrap();
    web.click("button[name=step][value=count]").await.unwrap();
    web.wait_text(
        "#replay-result",
        "1 of 1 selected would be replayed",
        PAGE_WAIT,
    )
    .await
    .unwrap();
    assert!(
        web.url().await.contains("/ui/dead-letters?reason=400"),
        "no reload: the count came in place"
    );
    books.set_behaviour(Behaviour::Ok);
    web.click("#replay-result button[value=replay]")
        .await
        .unwrap();
    web.wait_text("#replay-result", "Replayed 1", PAGE_WAIT)
        .await
        .unwrap();
    web.snapshot("replayed").await.unwrap();
    web.click("#replay-result li a").await.unwrap();
    // The delivery's state refreshes itself until it settles.
    web.wait_text("#delivery-state", "delivered", Duration::from_secs(60))
        .await
        .unwrap();
    web.snapshot("dead-letter-delivered").await.unwrap();
    delivery_in(&a, sold, "delivered").await;
    assert_eq!(books.accepted_keys().len(), 1, "delivered once");

    // The other one was booked by hand: discard it, with the reason.
    web.goto(&format!("{console}/ui/dead-letters/{to_discard}"))
        .await
        .unwrap();
    web.fill(
        "form[action$='/discard'] input[name=reason]",
        "booked by hand",
    )
    .await
    .unwrap();
    web.click("form[action$='/discard'] button").await.unwrap();
    let discarded = web
        .wait_text("#main", "Discarded.", PAGE_WAIT)
        .await
        .unwrap();
    assert!(
        discarded.contains("booked by hand") && discarded.contains("discard via console"),
        "{discarded}"
    );
    web.snapshot("dead-letter-discarded").await.unwrap();
    assert_eq!(books.accepted_keys().len(), 1, "a discard sends nothing");

    // An operator scoped to B sees nothing of A.
    let ops_b = create_operator(&stack, "ops-b", &b).await;
    web.sign_out().await.unwrap();
    web.sign_in(&console, &ops_b).await.unwrap();
    web.goto(&format!("{console}/ui/sales/{sold}"))
        .await
        .unwrap();
    assert_eq!(web.text("h1").await.unwrap(), "Not found");
    web.snapshot("scoped-operator-404").await.unwrap();
    web.goto(&format!("{console}/ui/sales?q=B-2001"))
        .await
        .unwrap();
    web.wait_text("#timeline", "Accepted (B-2001)", PAGE_WAIT)
        .await
        .unwrap();
    web.goto(&format!("{console}/ui/integrations"))
        .await
        .unwrap();
    assert!(
        !web.text("#main").await.unwrap().contains("Books"),
        "A's integration is not shown"
    );
    assert_eq!(
        status_in_session(&console, &ops_b, &format!("/ui/sales/{sold}")).await,
        StatusCode::NOT_FOUND
    );

    // Tenant B's own session: A's sale by URL is a 404 too.
    web.sign_out().await.unwrap();
    web.sign_in(&console, &b.token).await.unwrap();
    web.goto(&format!("{console}/ui/sales/{sold}"))
        .await
        .unwrap();
    assert_eq!(web.text("h1").await.unwrap(), "Not found");
    assert_eq!(
        status_in_session(&console, &b.token, &format!("/ui/sales/{sold}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status_in_session(&console, &a.token, &format!("/ui/sales/{sold}")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_in_session(&console, &b.token, "/ui/overview").await,
        StatusCode::NOT_FOUND,
        "operators only"
    );
    web.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_sets_up_an_integration_on_pages_and_a_sale_arrives() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let console = stack.console_url();
    let b = stack.tenant("Energy B").await.expect("tenant B");
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let provider = partner::set_up_provider(&b.api).await.expect("B's side");
    // A's own script and flow exist before the integration (A's catalogue).
    partner::expect(
        &a.api,
        reqwest::Method::PUT,
        "/v1/products/script",
        &partner::a_script(),
        StatusCode::CREATED,
    )
    .await
    .unwrap();
    partner::expect(
        &a.api,
        reqwest::Method::PUT,
        &format!("/v1/flows/{A_FLOW}"),
        &json!({"name": "Energy", "products": ["script"]}),
        StatusCode::CREATED,
    )
    .await
    .unwrap();

    let mut web = Browser::start("tenant-setup").await.expect("browser");
    web.sign_in(&console, &a.token).await.unwrap();
    assert!(
        web.url().await.ends_with("/ui/integrations"),
        "a tenant starts at its integrations"
    );
    web.click("a[href='/ui/integrations/new']").await.unwrap();
    web.fill("input[name=name]", "Energy B").await.unwrap();
    web.select("select[name=target_kind]", "salesync")
        .await
        .unwrap();
    web.fill("input[name=target_url]", &stack.ingest_url())
        .await
        .unwrap();
    web.fill("input[name=provider_url]", &console)
        .await
        .unwrap();
    // A wrong token first: the test says so in plain words.
    web.fill("input[name=token]", "sst_wrong").await.unwrap();
    web.click("button[name=step][value=test]").await.unwrap();
    web.wait_text("#connection-result", "not connected", PAGE_WAIT)
        .await
        .unwrap();
    web.fill("input[name=token]", &provider.agent_token)
        .await
        .unwrap();
    web.click("button[name=step][value=test]").await.unwrap();
    let verdict = web
        .wait_text("#connection-result", "granted products", PAGE_WAIT)
        .await
        .unwrap();
    assert!(
        !verdict.contains("not connected") && verdict.contains("2 granted products"),
        "{verdict}"
    );
    web.snapshot("test-connection").await.unwrap();
    web.click("button[name=step][value=create]").await.unwrap();
    assert!(
        web.text("#signing-secret")
            .await
            .unwrap()
            .starts_with("whsec_")
    );
    web.snapshot("integration-created").await.unwrap();
    web.click("main a.button").await.unwrap();

    // Forwarding settings: paid sales only.
    web.fill("input[name=trigger_statuses]", "paid")
        .await
        .unwrap();
    web.click("#settings button[type=submit]").await.unwrap();
    web.wait_text("#main", "Settings saved.", PAGE_WAIT)
        .await
        .unwrap();
    web.snapshot("integration").await.unwrap();
    // Pause and resume.
    web.fill(
        "form[action$='/pause'] input[name=reason]",
        "moving servers",
    )
    .await
    .unwrap();
    web.click("form[action$='/pause'] button").await.unwrap();
    let paused = web
        .wait_text("#main", "Paused: deliveries are held", PAGE_WAIT)
        .await
        .unwrap();
    assert!(paused.contains("moving servers"), "{paused}");
    web.click("form[action$='/resume'] button").await.unwrap();
    web.wait_text("#main", "Resumed", PAGE_WAIT).await.unwrap();
    let integration_page = web
        .url()
        .await
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();

    // Import B's fixed product; Sync now finds nothing new.
    web.click("a[href$='/imports']").await.unwrap();
    web.click(&format!("#offered input[value='{FIXED}']"))
        .await
        .unwrap();
    web.click("form[action$='/imports'] button[type=submit]")
        .await
        .unwrap();
    web.wait_text("#main", "Imported.", PAGE_WAIT)
        .await
        .unwrap();
    assert!(web.text("#last-synchronised").await.unwrap() != "—");
    web.click("form[action$='/sync'] button").await.unwrap();
    web.wait_text("#sync-result", "Nothing changed", PAGE_WAIT)
        .await
        .unwrap();
    web.snapshot("imports").await.unwrap();

    // Map the flow and the IBAN; the check flags the one question left.
    web.goto(&format!("{integration_page}/mappings"))
        .await
        .unwrap();
    web.select(&format!("select[name='flow.{A_FLOW}']"), B_FLOW)
        .await
        .unwrap();
    web.select("select[name='q.iban.source']", "question:bank_account")
        .await
        .unwrap();
    web.snapshot("mappings").await.unwrap();
    web.click("form[action$='/mappings'] button[type=submit]")
        .await
        .unwrap();
    let flagged = web
        .wait_text("#mismatches", "unmapped required", PAGE_WAIT)
        .await
        .unwrap();
    assert!(
        flagged.contains("question term") && !flagged.contains("question iban"),
        "{flagged}"
    );
    web.snapshot("mapping-check").await.unwrap();
    // Its link leads to the question's place on the mappings page.
    web.click("#mismatches a[href$='#q-term']").await.unwrap();
    web.select("select[name='q.term.source']", "question:looptijd")
        .await
        .unwrap();
    web.click("form[action$='/mappings'] button[type=submit]")
        .await
        .unwrap();
    // A's options (1j, 3j) are not B's (1y, 3y) until renamed.
    web.wait_text("#mismatches", "options without counterpart", PAGE_WAIT)
        .await
        .unwrap();
    web.click("#mismatches a[href$='#q-term']").await.unwrap();
    web.select("select[name='q.term.opt.1j']", "1y")
        .await
        .unwrap();
    web.select("select[name='q.term.opt.3j']", "3y")
        .await
        .unwrap();
    web.snapshot("mappings-options").await.unwrap();
    web.click("form[action$='/mappings'] button[type=submit]")
        .await
        .unwrap();
    web.wait_text("#mismatches", "no mismatches", PAGE_WAIT)
        .await
        .unwrap();

    // A's sale goes to B as B's order.
    let sold = a
        .api
        .post_sale(&partner::a_sale("A-5001", "paid", A_FLOW, FIXED))
        .await
        .expect("sale")
        .id;
    delivery_in(&a, sold, "delivered").await;
    let v = a.api.get_sale(sold).await.unwrap();
    let at_b = v
        .deliveries
        .iter()
        .find(|d| d.state == "delivered")
        .map(|d| d.id.to_string())
        .unwrap();
    let found = b
        .api
        .lookup(std::slice::from_ref(&at_b))
        .await
        .expect("B's lookup");
    assert_eq!(found.len(), 1, "B holds the order {at_b}: {found:?}");
    web.goto(&format!("{console}/ui/sales?q=A-5001"))
        .await
        .unwrap();
    web.wait_text(
        "#timeline",
        "Forwarded to Energy B — now delivered",
        PAGE_WAIT,
    )
    .await
    .unwrap();
    web.snapshot("sale-arrived").await.unwrap();
    web.close().await.unwrap();
}
