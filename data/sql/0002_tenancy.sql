-- SPDX-License-Identifier: GPL-3.0-or-later
-- Companies, users, tokens and the audit log, isolated by row-level security.
--
-- The daemon's queries run as the role calldocker_app: neither the tables'
-- owner nor BYPASSRLS. Each request's statement runs in a transaction that
-- sets calldocker.company_id (the tenant) or calldocker.scope = 'platform'
-- (the super admin's and the auth code's own lookups); without either, a
-- company's rows are invisible.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'calldocker_app') THEN
    CREATE ROLE calldocker_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;

CREATE FUNCTION calldocker_company() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(current_setting('calldocker.company_id', true), '')::uuid $$;

CREATE FUNCTION calldocker_platform() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(current_setting('calldocker.scope', true), '') = 'platform' $$;

CREATE TABLE companies (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$'),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
  status_reason text CHECK (length(status_reason) <= 1000),
  plan text NOT NULL DEFAULT 'free' CHECK (length(plan) BETWEEN 1 AND 50),
  allowed_origins text[] NOT NULL DEFAULT '{}',
  settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
  email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('superadmin', 'company_admin', 'agent')),
  display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  skills jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(skills) = 'object'),
  languages text[] NOT NULL DEFAULT '{}',
  active boolean NOT NULL DEFAULT true,
  password_changed_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- the super admin belongs to no company; everyone else to exactly one
  CHECK ((role = 'superadmin') = (company_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_company ON users (company_id);

CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  token_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  created_from text
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE password_reset_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
  token_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
  actor_user_id uuid,
  action text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
  target text,
  details jsonb NOT NULL DEFAULT '{}',
  client_address text,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_company_time ON audit_log (company_id, created_at DESC);

-- Row-level security: every table with a company's rows.
ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON companies
  USING (calldocker_platform() OR id = calldocker_company())
  WITH CHECK (calldocker_platform() OR id = calldocker_company());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON users
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON refresh_tokens
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE password_reset_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_reset_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON password_reset_tokens
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON audit_log
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

-- What the daemon may do. The audit log is append-only for it.
GRANT USAGE ON SCHEMA public TO calldocker_app;
GRANT EXECUTE ON FUNCTION calldocker_company(), calldocker_platform() TO calldocker_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON companies, users, refresh_tokens, password_reset_tokens,
  daemons TO calldocker_app;
GRANT SELECT, INSERT ON audit_log TO calldocker_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO calldocker_app;
