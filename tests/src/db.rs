//! `TestDb`: a uniquely named PostgreSQL database on the server of
//! `DATABASE_URL`, migrated with the shared migrations, dropped (`WITH
//! (FORCE)`, so lingering service connections do not block it) on `cleanup()`
//! or drop. Also the small query helpers tests assert with.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::temp::unique_suffix;

/// Default server when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
    dropped: bool,
}

impl TestDb {
    /// Creates and migrates `sstest_<random>` on the server of `DATABASE_URL`.
    pub async fn create() -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        Self::create_on(&base).await
    }

    /// Creates and migrates `sstest_<random>` on the server of `base` (e.g.
    /// a `PrivatePostgres`).
    pub async fn create_on(base: &str) -> anyhow::Result<Self> {
        Self::create_with(base, None).await
    }

    /// Creates `sstest_<random>` on the server of `DATABASE_URL` migrated
    /// only up to migration `version`: a database as an older release left
    /// it, to test what the later migrations do to its rows
    /// (`salesync_core::db::MIGRATOR.run(db.pool())` applies them).
    pub async fn create_up_to(version: i64) -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        Self::create_with(&base, Some(version)).await
    }

    async fn create_with(base: &str, up_to: Option<i64>) -> anyhow::Result<Self> {
        // Connect to the maintenance database to create ours: the configured
        // one (e.g. `salesync`) may not exist yet, `postgres` always does.
        let admin_url = with_database(base, "postgres");
        let name = format!("sstest_{}", unique_suffix());
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {admin_url}: {e}"))?;
        // The name is ours (alphanumeric), so formatting it into DDL is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = with_database(base, &name);
        let pool = match up_to {
            None => salesync_core::db::connect_and_migrate(&url, 4).await,
            Some(version) => migrate_up_to(&url, version).await,
        };
        let pool = match pool {
            Ok(p) => p,
            Err(e) => {
                let _ = drop_database(&admin_url, &name).await;
                return Err(e);
            }
        };
        Ok(Self {
            name,
            url,
            admin_url,
            pool,
            dropped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection URL services get as `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A small pool on the test database for assertions.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT count(*) ...` or any query returning one bigint.
    pub async fn scalar(&self, sql: &'static str) -> anyhow::Result<i64> {
        let v: i64 = sqlx::query_scalar(sql).fetch_one(self.pool()).await?;
        Ok(v)
    }

    /// Like `scalar`, with one bound text parameter (`$1`).
    pub async fn scalar_with(&self, sql: &'static str, param: &str) -> anyhow::Result<i64> {
        let v: i64 = sqlx::query_scalar(sql)
            .bind(param)
            .fetch_one(self.pool())
            .await?;
        Ok(v)
    }

    /// Leaves the database in place on drop (its server is thrown away as a
    /// whole anyway, and may be down when the drop runs).
    pub fn forget(&mut self) {
        self.dropped = true;
    }

    /// Drops the database now (also done on drop).
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        self.pool.close().await;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let done =
            crate::temp::cleanup_blocking(
                move || async move { drop_database(&admin_url, &name).await },
            );
        if let Err(e) = done {
            eprintln!("salesync-e2e: could not drop database {}: {e}", self.name);
        }
    }
}

async fn migrate_up_to(url: &str, version: i64) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
    let all = &salesync_core::db::MIGRATOR;
    let older = sqlx::migrate::Migrator {
        migrations: all
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    older.run(&pool).await?;
    Ok(pool)
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

/// `url` with its database (path) replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_urls() {
        for (url, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/salesync",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://postgres@127.0.0.1:5432",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/x?sslmode=disable",
            ),
            ("postgres://h/", "postgres://h/x"),
        ] {
            assert_eq!(with_database(url, "x"), want, "{url}");
        }
    }
}
