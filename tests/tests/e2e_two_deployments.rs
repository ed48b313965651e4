//! The tenant-to-tenant scenario across two salesync deployments: A and B
//! each on their own database, vhost and five services, so nothing may
//! assume that both tenants share one. A reaches B only through B's public
//! routes, with the Agent token B gave it.

use salesync_e2e::partner::{ProviderAddress, Scenario};
use salesync_e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_two_deployments() {
    let a_side = Stack::start(StackOptions::default())
        .await
        .expect("A's deployment");
    let b_side = Stack::start(StackOptions::default())
        .await
        .expect("B's deployment");
    assert_ne!(a_side.db.url(), b_side.db.url());
    let a = a_side.tenant("Shop A").await.expect("tenant A");
    let b = b_side.tenant("Energy B").await.expect("tenant B");
    let address = ProviderAddress {
        ingest_url: b_side.ingest_url(),
        console_url: b_side.console_url(),
    };
    let scenario = Scenario::set_up(&a_side, &a, &b, &address).await;
    scenario.play(&a_side, &b_side).await;
    // Neither database holds the other's tenant.
    let foreign: i64 = a_side
        .db
        .scalar_with(
            "SELECT count(*) FROM tenants WHERE id = $1::uuid",
            &b.id.to_string(),
        )
        .await
        .expect("count");
    assert_eq!(foreign, 0, "B is not a tenant of A's deployment");
}
