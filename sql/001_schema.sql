-- ngx_http_retell_module schema (SPEC section 4).  Idempotent: safe to
-- apply again.  Apply every file of sql/ in order with
--   psql -v ON_ERROR_STOP=1 -f sql/NNN_name.sql

CREATE SCHEMA IF NOT EXISTS retell;

CREATE TABLE IF NOT EXISTS retell.companies (
    id                           bigserial PRIMARY KEY,
    name                         text NOT NULL,
    email_notifications_enabled  boolean NOT NULL DEFAULT false,
    email_recipients             text[] NOT NULL DEFAULT '{}'
);

-- Recipients are checked once, when a company's list is written, not on
-- every delivery that queues an email: two generated columns keep the
-- valid addresses (trimmed, as they are sent) and the invalid entries (as
-- written, for the warning the delivery logs).

CREATE OR REPLACE FUNCTION retell.valid_email(address text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    -- the same rule as ngx_http_retell_mail_valid_address(): a dot-atom
    -- local part of at most 64 bytes, a domain of two labels or more
    SELECT length(address) <= 254
       AND length(split_part(address, '@', 1)) <= 64
       AND address ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
$$;

CREATE OR REPLACE FUNCTION retell.valid_recipients(list text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(btrim(r) ORDER BY n)
                        FILTER (WHERE retell.valid_email(btrim(r))), '{}')
      FROM unnest(list) WITH ORDINALITY AS u(r, n)
$$;

CREATE OR REPLACE FUNCTION retell.invalid_recipients(list text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(r ORDER BY n)
                        FILTER (WHERE r IS NULL
                                   OR NOT retell.valid_email(btrim(r))), '{}')
      FROM unnest(list) WITH ORDINALITY AS u(r, n)
$$;

-- ALTER TABLE and CREATE INDEX lock their table even when IF NOT EXISTS
-- finds nothing to do; applied again under traffic (every deployment
-- does) that lock waits for deliveries in flight and deadlocks with one
-- holding another table: so each runs only when something is missing
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'retell'
                      AND table_name = 'companies'
                      AND column_name = 'invalid_recipients')
    THEN
        ALTER TABLE retell.companies
            ADD COLUMN IF NOT EXISTS valid_recipients text[]
                GENERATED ALWAYS AS
                    (retell.valid_recipients(email_recipients)) STORED,
            ADD COLUMN IF NOT EXISTS invalid_recipients text[]
                GENERATED ALWAYS AS
                    (retell.invalid_recipients(email_recipients)) STORED;
    END IF;
END;
$$;

CREATE TABLE IF NOT EXISTS retell.agents (
    agent_id    text PRIMARY KEY,
    company_id  bigint NOT NULL REFERENCES retell.companies (id)
);

CREATE TABLE IF NOT EXISTS retell.customers (
    id             bigserial PRIMARY KEY,
    company_id     bigint NOT NULL REFERENCES retell.companies (id),
    phone_e164     text NOT NULL,
    phone_raw      text NOT NULL,
    phone_display  text NOT NULL,
    name           text NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, phone_e164)
);

CREATE TABLE IF NOT EXISTS retell.calls (
    call_id                       text PRIMARY KEY,
    company_id                    bigint NOT NULL
                                  REFERENCES retell.companies (id),
    customer_id                   bigint NULL
                                  REFERENCES retell.customers (id),
    direction                     text NOT NULL
                                  CHECK (direction IN ('inbound', 'outbound')),
    agent_id                      text,
    from_number                   text,
    to_number                     text,
    customer_phone_display        text,
    call_status                   text,
    disconnection_reason          text,
    started_at                    timestamptz,
    ended_at                      timestamptz,
    duration_ms                   bigint,
    transcript                    text,
    recording_url                 text,
    call_summary                  text,
    call_successful               boolean,
    in_voicemail                  boolean,
    user_sentiment                text,
    custom_analysis_data          jsonb,
    collected_dynamic_variables   jsonb,
    metadata                      jsonb,
    action_required               boolean NULL,
    transferred                   boolean NOT NULL DEFAULT false,
    analyzed                      boolean NOT NULL DEFAULT false,
    archived_at                   timestamptz NULL,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),

    -- beyond the contract: the facts behind action_required by source,
    -- so the merged value does not depend on the order events arrive in
    action_required_analysis      boolean NULL,
    action_required_collected     boolean NULL,
    qualified                     boolean NULL,
    transfer_destination          text,
    retell_llm_dynamic_variables  jsonb,

    -- a transfer that did not connect, a call the platform dropped
    -- (docs/data-and-rules.md), and Retell's storage setting for the call
    transfer_failed               boolean NOT NULL DEFAULT false,
    call_failed                   boolean NOT NULL DEFAULT false,
    data_storage_setting          text
);

-- the same on a database from before them; only when missing (ALTER TABLE
-- locks the table even when it has nothing to do)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'retell' AND table_name = 'calls'
                      AND column_name = 'data_storage_setting')
    THEN
        ALTER TABLE retell.calls
            ADD COLUMN IF NOT EXISTS transfer_failed boolean NOT NULL
                DEFAULT false,
            ADD COLUMN IF NOT EXISTS call_failed boolean NOT NULL
                DEFAULT false,
            ADD COLUMN IF NOT EXISTS data_storage_setting text;
    END IF;
END;
$$;

CREATE TABLE IF NOT EXISTS retell.tickets (
    id             bigserial PRIMARY KEY,
    company_id     bigint NOT NULL REFERENCES retell.companies (id),
    customer_id    bigint NULL REFERENCES retell.customers (id),
    call_id        text NOT NULL UNIQUE REFERENCES retell.calls (call_id),
    status         text NOT NULL
                   CHECK (status IN ('new', 'qualified', 'contacted',
                                     'resolved', 'closed')),
    status_source  text NOT NULL DEFAULT 'retell',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS retell.webhook_events (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    endpoint        text NOT NULL CHECK (endpoint IN ('inbound', 'outbound')),
    event           text NOT NULL,
    call_id         text NOT NULL,
    payload         jsonb NOT NULL,
    payload_sha256  bytea NOT NULL UNIQUE,
    -- NULL while the agent maps to no company: stored, not applied
    company_id      bigint NULL REFERENCES retell.companies (id),
    applied_at      timestamptz NULL
);

-- retention (sql/004_retention.sql): a payload past its age becomes a
-- tombstone, pruned_at set and the payload dropped; only when missing
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'retell'
                      AND table_name = 'webhook_events'
                      AND column_name = 'pruned_at')
    THEN
        ALTER TABLE retell.webhook_events
            ADD COLUMN IF NOT EXISTS pruned_at timestamptz NULL,
            ALTER COLUMN payload DROP NOT NULL;
    END IF;
END;
$$;

-- replay (tools/retell-replay): a stored unrouted row sent again once its
-- agent was mapped; only when missing
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_schema = 'retell'
                      AND table_name = 'webhook_events'
                      AND column_name = 'replayed_at')
    THEN
        ALTER TABLE retell.webhook_events
            ADD COLUMN IF NOT EXISTS replayed_at timestamptz NULL;
    END IF;
END;
$$;

-- Only what the module's statements and guarantees use: the primary key,
-- the digest (idempotency) and the unrouted rows (replay).  An index on
-- call_id served no statement and cost every delivery an insert into a
-- random leaf page (docs/BENCHMARKS.md); an operator who browses events by
-- call creates it (docs/postgres.md).
DROP INDEX IF EXISTS retell.webhook_events_call_id;

DO $$
BEGIN
    IF to_regclass('retell.webhook_events_unrouted') IS NULL THEN
        CREATE INDEX webhook_events_unrouted
            ON retell.webhook_events (received_at) WHERE company_id IS NULL;
    END IF;
END;
$$;

CREATE TABLE IF NOT EXISTS retell.email_outbox (
    id               bigserial PRIMARY KEY,
    company_id       bigint NOT NULL REFERENCES retell.companies (id),
    ticket_id        bigint NOT NULL REFERENCES retell.tickets (id),
    call_id          text NOT NULL UNIQUE REFERENCES retell.calls (call_id),
    reason           text NOT NULL
                     CONSTRAINT email_outbox_reason_check
                     CHECK (reason IN ('action_required', 'call_transfer',
                                       'transfer_failed', 'call_failed')),
    recipients       text[] NOT NULL,
    subject          text NULL,
    body             text NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz NULL
);

-- the reasons a failed transfer and a dropped call added; only when
-- missing
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'email_outbox_reason_check'
                      AND conrelid = 'retell.email_outbox'::regclass
                      AND pg_get_constraintdef(oid) LIKE '%call_failed%')
    THEN
        ALTER TABLE retell.email_outbox
            DROP CONSTRAINT IF EXISTS email_outbox_reason_check,
            ADD CONSTRAINT email_outbox_reason_check
                CHECK (reason IN ('action_required', 'call_transfer',
                                  'transfer_failed', 'call_failed'))
                NOT VALID;
        ALTER TABLE retell.email_outbox
            VALIDATE CONSTRAINT email_outbox_reason_check;
    END IF;
END;
$$;

DO $$
BEGIN
    IF to_regclass('retell.email_outbox_due') IS NULL THEN
        CREATE INDEX email_outbox_due
            ON retell.email_outbox (next_attempt_at)
            WHERE status IN ('pending', 'sending');
    END IF;
END;
$$;

-- what the Call Records page shows
CREATE OR REPLACE VIEW retell.call_records AS
SELECT c.call_id,
       c.company_id,
       c.direction,
       c.started_at,
       c.ended_at,
       c.duration_ms,
       c.call_status,
       c.disconnection_reason,
       c.call_summary,
       c.user_sentiment,
       c.recording_url,
       c.customer_id,
       cu.name AS customer_name,
       COALESCE(cu.phone_display, c.customer_phone_display)
           AS customer_phone_display,
       t.id AS ticket_id,
       t.status AS ticket_status,
       c.created_at
  FROM retell.calls c
  LEFT JOIN retell.customers cu ON cu.id = c.customer_id
  LEFT JOIN retell.tickets t ON t.call_id = c.call_id
 WHERE c.archived_at IS NULL
 ORDER BY COALESCE(c.started_at, c.created_at) DESC, c.call_id;
