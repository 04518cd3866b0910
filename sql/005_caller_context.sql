-- Caller context (issue 21, the README's "Caller context"): what the
-- inbound call webhook answers while the phone rings.  Idempotent,
-- applied after 001-004 by tools/migrate.

-- A company's Retell numbers, in E.164, managed like retell.agents: a
-- call_inbound that names no known agent is routed by the number called.
CREATE TABLE IF NOT EXISTS retell.company_numbers (
    phone_e164  text PRIMARY KEY
                CONSTRAINT company_numbers_e164_check
                CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    company_id  bigint NOT NULL REFERENCES retell.companies (id)
);

-- the lookups' indexes; only when missing (CREATE INDEX locks its table
-- even when IF NOT EXISTS finds it, see 001)
DO $$
BEGIN
    IF to_regclass('retell.tickets_customer_open') IS NULL THEN
        CREATE INDEX tickets_customer_open
            ON retell.tickets (customer_id, created_at)
            WHERE status NOT IN ('resolved', 'closed');
    END IF;

    IF to_regclass('retell.calls_customer') IS NULL THEN
        CREATE INDEX calls_customer ON retell.calls (customer_id);
    END IF;
END;
$$;

-- "3 minutes", "1 hour", "12 days": an age a prompt can read out
CREATE OR REPLACE FUNCTION retell.spoken_age(p_age interval)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT n || ' ' || unit || CASE WHEN n = 1 THEN '' ELSE 's' END
      FROM (SELECT greatest(extract(epoch FROM p_age), 0) AS s) a,
           LATERAL (SELECT CASE WHEN a.s < 3600 THEN floor(a.s / 60)
                                WHEN a.s < 172800 THEN floor(a.s / 3600)
                                ELSE floor(a.s / 86400) END::bigint AS n,
                           CASE WHEN a.s < 3600 THEN 'minute'
                                WHEN a.s < 172800 THEN 'hour'
                                ELSE 'day' END AS unit) u
$$;

-- One row, always: the company (by agent, else by the number called,
-- else p_fallback_company), the caller as a customer of it (by E.164
-- number), its open tickets (not resolved or closed) and the most recent
-- one's call summary, cut to p_summary_max characters.  Read-only: the
-- call's own events store what happens next.  PL/pgSQL, not SQL: a SQL
-- function this shape is planned again at every call (0.6 ms of
-- PostgreSQL's CPU a lookup in make bench), PL/pgSQL keeps its plan for
-- the session.
CREATE OR REPLACE FUNCTION retell.caller_context(
    p_agent_id          text,
    p_to_e164           text,
    p_fallback_company  bigint,
    p_from_e164         text,
    p_summary_max       integer,
    p_ids_max           integer,
    OUT company_id         bigint,
    OUT company_name       text,
    OUT customer_id        bigint,
    OUT customer_name      text,
    OUT customer_phone     text,
    OUT open_ticket_count  bigint,
    OUT last_call_at       text,
    OUT ticket_id          bigint,
    OUT ticket_status      text,
    OUT ticket_age         text,
    OUT ticket_summary     text,
    OUT open_ticket_ids    text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    WITH company AS (
        SELECT co.id, co.name
          FROM retell.companies co
         WHERE co.id = COALESCE(
                   (SELECT a.company_id FROM retell.agents a
                     WHERE a.agent_id = p_agent_id),
                   (SELECT n.company_id FROM retell.company_numbers n
                     WHERE n.phone_e164 = p_to_e164),
                   p_fallback_company)
    ), customer AS (
        SELECT cu.id, cu.name, cu.phone_display
          FROM retell.customers cu JOIN company ON cu.company_id = company.id
         WHERE cu.phone_e164 = p_from_e164
    ), open AS (
        SELECT t.id, t.status, t.created_at, c.call_summary
          FROM retell.tickets t
          JOIN customer cu ON t.customer_id = cu.id
          JOIN retell.calls c ON c.call_id = t.call_id
         WHERE t.status NOT IN ('resolved', 'closed')
    ), latest AS (
        SELECT * FROM open ORDER BY created_at DESC, id DESC LIMIT 1
    )
    SELECT company.id, company.name, cu.id, cu.name, cu.phone_display,
           (SELECT count(*) FROM open),
           (SELECT to_char(max(COALESCE(c.started_at, c.created_at))
                           AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
              FROM retell.calls c WHERE c.customer_id = cu.id),
           latest.id, latest.status,
           retell.spoken_age(now() - latest.created_at),
           CASE WHEN length(latest.call_summary) > p_summary_max
                THEN left(latest.call_summary, p_summary_max - 1) || '…'
                ELSE latest.call_summary END,
           (SELECT string_agg(id::text, ',')
              FROM (SELECT o.id FROM open o
                     ORDER BY o.created_at DESC, o.id DESC
                     LIMIT p_ids_max) ids)
      INTO company_id, company_name, customer_id, customer_name,
           customer_phone, open_ticket_count, last_call_at, ticket_id,
           ticket_status, ticket_age, ticket_summary, open_ticket_ids
      FROM (SELECT 1) one
      LEFT JOIN company ON true
      LEFT JOIN customer cu ON true
      LEFT JOIN latest ON true;
END;
$$;
