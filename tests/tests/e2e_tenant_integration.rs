//! The whole tenant-to-tenant scenario of issue 17 on one deployment,
//! through the five service binaries: B sets up its catalogue, grants and
//! Agent; A adds the integration, tests it, imports and maps. A's sales that
//! should not go say why; those that should arrive at B exactly once with
//! B's flow and answers; B's custom status comes back mapped; and an order a
//! stale copy let through is refused by B in words that reach A's sale.

use salesync_e2e::partner::{ProviderAddress, Scenario};
use salesync_e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tenant_integration() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let b = stack.tenant("Energy B").await.expect("tenant B");
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let address = ProviderAddress {
        ingest_url: stack.ingest_url(),
        console_url: stack.console_url(),
    };
    let scenario = Scenario::set_up(&stack, &a, &b, &address).await;
    scenario.play(&stack, &stack).await;
}
