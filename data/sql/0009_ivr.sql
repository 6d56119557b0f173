-- SPDX-License-Identifier: GPL-3.0-or-later
-- IVR flows (docs/ivr.md). A flow has a name, at most one draft (what an
-- edit saved and nobody published yet) and numbered versions, each as it
-- was published and never changed afterwards; `live_version` is the one
-- new calls start in (calls in progress keep the one they started with).
-- The daemon checks a definition (CdIvrFlow) before it is stored here.
--
-- What the live version sends calls to or plays is listed beside it, so
-- that PostgreSQL itself refuses to delete a queue or a prompt a live flow
-- still uses (NO ACTION, like country_queues: deleting the company deletes
-- all of them in one statement).

CREATE TABLE prompts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  -- the Ogg/Opus file in the blob store, and what it holds
  storage_key text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 400),
  duration_ms int NOT NULL CHECK (duration_ms > 0),
  size_bytes bigint NOT NULL CHECK (size_bytes > 0),
  -- what was uploaded: its media type and size
  source_type text NOT NULL,
  source_bytes bigint NOT NULL CHECK (source_bytes > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, name),
  UNIQUE (id, company_id)
);
CREATE INDEX prompts_company_created ON prompts (company_id, created_at, id);

CREATE TABLE ivr_flows (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  draft jsonb CHECK (draft IS NULL OR jsonb_typeof(draft) = 'object'),
  draft_updated_at timestamptz,
  live_version int,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, name),
  UNIQUE (id, company_id)
);
CREATE INDEX ivr_flows_company_created ON ivr_flows (company_id, created_at, id);

CREATE TABLE ivr_flow_versions (
  flow_id uuid NOT NULL,
  company_id uuid NOT NULL,
  version int NOT NULL CHECK (version >= 1),
  definition jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
  published_at timestamptz NOT NULL DEFAULT now(),
  published_by uuid,
  PRIMARY KEY (flow_id, version),
  FOREIGN KEY (flow_id, company_id) REFERENCES ivr_flows (id, company_id) ON DELETE CASCADE
);

-- the queues and prompts the live version uses
CREATE TABLE ivr_flow_queues (
  flow_id uuid NOT NULL,
  company_id uuid NOT NULL,
  queue_id uuid NOT NULL,
  PRIMARY KEY (flow_id, queue_id),
  FOREIGN KEY (flow_id, company_id) REFERENCES ivr_flows (id, company_id) ON DELETE CASCADE,
  FOREIGN KEY (queue_id, company_id) REFERENCES queues (id, company_id)
);
CREATE INDEX ivr_flow_queues_queue ON ivr_flow_queues (queue_id);

CREATE TABLE ivr_flow_prompts (
  flow_id uuid NOT NULL,
  company_id uuid NOT NULL,
  prompt_id uuid NOT NULL,
  PRIMARY KEY (flow_id, prompt_id),
  FOREIGN KEY (flow_id, company_id) REFERENCES ivr_flows (id, company_id) ON DELETE CASCADE,
  FOREIGN KEY (prompt_id, company_id) REFERENCES prompts (id, company_id)
);
CREATE INDEX ivr_flow_prompts_prompt ON ivr_flow_prompts (prompt_id);

-- which flow a widget's calls start in, by the widget's entry point
-- ("default" unless the widget names another); only a published flow
CREATE TABLE ivr_entry_points (
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  flow_id uuid NOT NULL,
  PRIMARY KEY (company_id, name),
  FOREIGN KEY (flow_id, company_id) REFERENCES ivr_flows (id, company_id)
);
CREATE INDEX ivr_entry_points_flow ON ivr_entry_points (flow_id);

ALTER TABLE prompts ENABLE ROW LEVEL SECURITY;
ALTER TABLE prompts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON prompts
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE ivr_flows ENABLE ROW LEVEL SECURITY;
ALTER TABLE ivr_flows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON ivr_flows
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE ivr_flow_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ivr_flow_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON ivr_flow_versions
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE ivr_flow_queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE ivr_flow_queues FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON ivr_flow_queues
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE ivr_flow_prompts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ivr_flow_prompts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON ivr_flow_prompts
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE ivr_entry_points ENABLE ROW LEVEL SECURITY;
ALTER TABLE ivr_entry_points FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON ivr_entry_points
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

-- versions are kept as published: no UPDATE
GRANT SELECT, INSERT, DELETE ON ivr_flow_versions TO calldocker_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON prompts, ivr_flows, ivr_flow_queues, ivr_flow_prompts,
  ivr_entry_points TO calldocker_app;
