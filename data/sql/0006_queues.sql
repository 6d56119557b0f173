-- SPDX-License-Identifier: GPL-3.0-or-later
-- Queues and their members. A queue's definition (strategy, skills, rule,
-- business hours, timeouts, fallbacks) is checked by the daemon
-- (CdQueueSpec) before it is stored here as given; members are the company's
-- own users, each with a level in the queue.

CREATE TABLE queues (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  definition jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (company_id, name),
  UNIQUE (id, company_id)
);
CREATE INDEX queues_company_created ON queues (company_id, created_at, id);

CREATE TABLE queue_members (
  queue_id uuid NOT NULL,
  company_id uuid NOT NULL,
  user_id uuid NOT NULL,
  level int NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 10),
  PRIMARY KEY (queue_id, user_id),
  -- the queue and the user are the same company's
  FOREIGN KEY (queue_id, company_id) REFERENCES queues (id, company_id) ON DELETE CASCADE,
  FOREIGN KEY (user_id, company_id) REFERENCES users (id, company_id) ON DELETE CASCADE
);
CREATE INDEX queue_members_user ON queue_members (user_id);

ALTER TABLE queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE queues FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON queues
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

ALTER TABLE queue_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON queue_members
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT, UPDATE, DELETE ON queues, queue_members TO calldocker_app;
