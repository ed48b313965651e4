//! The web console's sessions over plain HTTP against the console binary:
//! the cookie's flags, CSRF on every form, logout, a revoked token ending
//! its session, who cannot sign in, and sign-in from another site.

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use salesync_e2e::{Stack, StackOptions};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    /// Signs in with `token`: (status, the session cookie if one was set).
    async fn sign_in(
        &self,
        token: &str,
        origin: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req = self
            .http
            .post(format!("{}/ui/login", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Fui%2Fintegrations"));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        let set = r
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), set.clone(), set.unwrap_or_default())
    }

    async fn get(&self, cookie: &str, path: &str) -> (StatusCode, String, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (r.status(), r.text().await.unwrap(), location)
    }

    async fn post(&self, cookie: &str, path: &str, body: &str) -> StatusCode {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// `name=value` of a Set-Cookie header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

/// The CSRF token a page's forms carry.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"_csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 20;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_cookie_bound_csrf_checked_and_end_when_they_should() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let web = Client::new(&stack.console_url());
    let a = stack.tenant("Shop A").await.expect("tenant");

    // The cookie: HttpOnly, SameSite=Strict, scoped to the pages; not Secure over plain HTTP.
    let (status, set, raw) = web.sign_in(&a.token, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = set.expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    assert!(!raw.contains("Secure"), "{raw}");
    let cookie = pair(&set);
    let (status, page, _) = web.get(&cookie, "/ui/integrations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains(&a.token),
        "the token never appears on a page"
    );

    // Behind a TLS-terminating proxy the cookie is Secure.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/ui/login", stack.console_url()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(format!("token={}", a.token))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Forms need the session's CSRF token: none, or another's, is refused and changes nothing.
    let (_, new_page, _) = web.get(&cookie, "/ui/integrations/new").await;
    let token = csrf(&new_page);
    let form = "name=X&target_kind=webhook&target_url=https%3A%2F%2Fexample.com%2Fhook&step=create";
    assert_eq!(
        web.post(&cookie, "/ui/integrations/new", form).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        web.post(
            &cookie,
            "/ui/integrations/new",
            &format!("{form}&_csrf=forged")
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let (_, list) = a
        .api
        .raw(Method::GET, "/v1/integrations", None)
        .await
        .unwrap();
    assert_eq!(
        list["integrations"].as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );
    assert_eq!(
        web.post(
            &cookie,
            "/ui/integrations/new",
            &format!("{form}&_csrf={token}")
        )
        .await,
        StatusCode::CREATED
    );
    // Another session's token is not this one's.
    let (_, other, _) = web.sign_in(&a.token, None).await;
    let other = pair(&other.unwrap());
    assert_eq!(
        web.post(
            &other,
            "/ui/integrations/new",
            &format!("{form}&_csrf={token}")
        )
        .await,
        StatusCode::FORBIDDEN
    );

    // A bad field is a 422 naming it, on the page.
    let bad = format!("name=&target_kind=webhook&target_url=nope&step=create&_csrf={token}");
    assert_eq!(
        web.post(&cookie, "/ui/integrations/new", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Logout ends the session: the cookie no longer opens pages.
    assert_eq!(
        web.post(&cookie, "/ui/logout", &format!("_csrf={token}"))
            .await,
        StatusCode::SEE_OTHER
    );
    let (status, _, location) = web.get(&cookie, "/ui/integrations").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().starts_with("/ui/login?next="));

    // Revoking the token ends its sessions at once.
    let (status, revoked) = a
        .api
        .with_token(stack.admin_token())
        .raw(
            Method::DELETE,
            &format!(
                "/admin/tenants/{}/tokens/{}",
                a.id,
                token_id(&stack, &a.token).await
            ),
            None,
        )
        .await
        .unwrap();
    assert!(status.is_success(), "{status} {revoked}");
    let (status, _, _) = web.get(&other, "/ui/integrations").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a revoked token's session is over"
    );

    // Who cannot sign in: an unknown token, an integration-only token, a sign-in from another site.
    let b = stack.tenant("Shop B").await.expect("tenant B");
    let agent_like = a
        .api
        .create_token(stack.admin_token(), b.id, "partner", true)
        .await
        .unwrap();
    assert_eq!(
        web.sign_in("sst_unknown", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        web.sign_in(&agent_like.token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        web.sign_in(&b.token, Some("https://evil.example")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        web.sign_in(stack.admin_token(), None).await.0,
        StatusCode::SEE_OTHER
    );
}

/// The id of the token (from the database: the API shows ids at creation only).
async fn token_id(stack: &Stack, token: &str) -> String {
    let pool = sqlx::PgPool::connect(stack.db.url()).await.unwrap();
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(salesync_core::tokens::hash(token))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    id.to_string()
}
