-- The provider's catalogue (issue 17): products with versions, and the
-- flows they are sold through (services/console, routes/products.rs and
-- routes/flows.rs; the checks are salesync_core::catalogue).
--
-- A product is keyed by the tenant's own key. Every change makes a new
-- version: `product_versions` keeps each one as the API took it, so a sale
-- made with version 3 can always be read with version 3. `products` points
-- at the current version; deleting a product marks it, keeping its versions.
CREATE TABLE products (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    key             text NOT NULL,
    current_version integer NOT NULL CHECK (current_version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE product_versions (
    tenant_id  uuid NOT NULL,
    key        text NOT NULL,
    version    integer NOT NULL CHECK (version >= 1),
    -- The whole version (`ProductVersion`), key and version included.
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key, version),
    FOREIGN KEY (tenant_id, key) REFERENCES products (tenant_id, key)
);

-- A flow names the products sold through it by key.
CREATE TABLE flows (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    key        text NOT NULL,
    name       text NOT NULL,
    products   text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (tenant_id, key)
);
