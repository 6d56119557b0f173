-- SPDX-License-Identifier: GPL-3.0-or-later
-- Calls and their timelines. The daemon writes them behind the calls
-- (CdCallStore, in the call's company scope); the API reads them.
--
-- A company sees and writes only its own calls; the platform scope (the
-- super admin) reads every company's but writes none. Timelines are
-- append-only for the daemon.

-- lets calls and events name (row, company) pairs, so a row can never point
-- at another company's user or call (foreign keys do not see row security)
CREATE UNIQUE INDEX users_id_company ON users (id, company_id);

CREATE TABLE calls (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  visitor_id text NOT NULL CHECK (length(visitor_id) BETWEEN 1 AND 200),
  visitor_address text CHECK (length(visitor_address) BETWEEN 1 AND 100),
  page text CHECK (length(page) BETWEEN 1 AND 2048),
  agent_id uuid,
  queue_id uuid, -- queues arrive with routing; no foreign key yet
  state text NOT NULL DEFAULT 'new'
    CHECK (state IN ('new', 'ivr', 'queued', 'ringing', 'connected', 'ended')),
  created_at timestamptz NOT NULL DEFAULT now(),
  answered_at timestamptz,
  ended_at timestamptz,
  end_reason text CHECK (length(end_reason) BETWEEN 1 AND 200),
  quality jsonb CHECK (jsonb_typeof(quality) = 'object'),
  UNIQUE (id, company_id),
  -- the agent is a user of the same company; a deleted user leaves the call
  FOREIGN KEY (agent_id, company_id) REFERENCES users (id, company_id)
    ON DELETE SET NULL (agent_id)
);
CREATE INDEX calls_company_created ON calls (company_id, created_at DESC, id DESC);
CREATE INDEX calls_agent_created ON calls (agent_id, created_at DESC, id DESC)
  WHERE agent_id IS NOT NULL;

CREATE TABLE call_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_id uuid NOT NULL,
  company_id uuid NOT NULL,
  at timestamptz NOT NULL,
  kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,63}$'),
  detail jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
  FOREIGN KEY (call_id, company_id) REFERENCES calls (id, company_id) ON DELETE CASCADE
);
CREATE INDEX call_events_call_at ON call_events (call_id, at, id);

-- Row-level security: reads by the company or the platform, writes by the
-- company only.
ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON calls FOR SELECT
  USING (calldocker_platform() OR company_id = calldocker_company());
CREATE POLICY tenant_insert ON calls FOR INSERT
  WITH CHECK (company_id = calldocker_company());
CREATE POLICY tenant_update ON calls FOR UPDATE
  USING (company_id = calldocker_company())
  WITH CHECK (company_id = calldocker_company());

ALTER TABLE call_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON call_events FOR SELECT
  USING (calldocker_platform() OR company_id = calldocker_company());
CREATE POLICY tenant_insert ON call_events FOR INSERT
  WITH CHECK (company_id = calldocker_company());

-- What the daemon may do: calls are never deleted by it, events are
-- append-only.
GRANT SELECT, INSERT, UPDATE ON calls TO calldocker_app;
GRANT SELECT, INSERT ON call_events TO calldocker_app;
